"""Multiboot (version 1) kernels: finding the header, loading the image and its modules, and the
boot information structure the kernel receives in EBX.

Everything here is pure: functions return the bytes to place and their guest-physical addresses,
and `vmm.loaders.load_kernel` writes them. The aim is that a kernel which boots under
`qemu-system-x86_64 -kernel` sees the same things here; where pyvmm differs from QEMU the comment
at that spot says so and why.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from vmm import layout as L
from vmm.errors import ConfigError, ImageError
from vmm.loaders.elf import Segment, check_segments, parse_elf, resolve_entry
from vmm.loaders.image import read_guest_file
from vmm.loaders.magic import ELF_MAGIC
from vmm.loaders.placement import LOW_WINDOW, Occupied, describe_window, find_gap, page_up
from vmm.record import TupleRecord

HEADER_MAGIC = 0x1BADB002  # in the kernel image
BOOT_MAGIC = 0x2BADB002  # in EAX at entry: tells the kernel a multiboot loader started it
SEARCH_BYTES = 8192  # the header lies wholly within the image's first 8 KiB
MAGIC_FIELDS = 12  # magic, flags, checksum: the part every header has
AOUT_FIELDS_END = 32  # header_addr .. entry_addr follow when flag 16 is set
VIDEO_FIELDS_END = 48  # mode_type, width, height, depth follow when flag 2 is set

# Header flags. Bits 0-15 are requirements: a loader that cannot meet one must refuse the kernel.
FLAG_PAGE_ALIGN = 1 << 0  # modules on 4 KiB boundaries: always done here
FLAG_MEMORY_INFO = 1 << 1  # mem_lower/mem_upper (and the map): always given
FLAG_VIDEO_MODE = 1 << 2  # a video mode: there is no display; ignored with a note, as QEMU does
FLAG_AOUT_KLUDGE = 1 << 16  # load addresses in the header instead of from an ELF file
REQUIRED_BITS = 0xFFFF
KNOWN_REQUIRED = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE

# Boot information flags: which fields of the structure are valid.
INFO_MEMORY = 1 << 0
INFO_BOOT_DEVICE = 1 << 1  # QEMU names "first hard disk, whole disk" (0x8000ffff); so do we
INFO_CMDLINE = 1 << 2
INFO_MODS = 1 << 3
INFO_MMAP = 1 << 6
INFO_BOOT_LOADER_NAME = 1 << 9
INFO_FLAGS = INFO_MEMORY | INFO_BOOT_DEVICE | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_BOOT_LOADER_NAME
BOOT_DEVICE = 0x8000FFFF

# Byte offsets of the fields used in the 88-byte information structure (the size QEMU writes;
# the later framebuffer fields are only meaningful with flag bit 12, which is never set).
INFO_SIZE = 88
OFF_FLAGS, OFF_MEM_LOWER, OFF_MEM_UPPER, OFF_BOOT_DEVICE, OFF_CMDLINE = 0, 4, 8, 12, 16
OFF_MODS_COUNT, OFF_MODS_ADDR = 20, 24
OFF_MMAP_LENGTH, OFF_MMAP_ADDR = 44, 48
OFF_BOOT_LOADER_NAME = 64

MODULE_ENTRY = struct.Struct("<IIII")  # mod_start, mod_end, string, reserved
MMAP_ENTRY = struct.Struct("<IQQI")  # size (of what follows it, so 20), base_addr, length, type
MMAP_ENTRY_SIZE_FIELD = MMAP_ENTRY.size - 4
MEMORY_AVAILABLE, MEMORY_RESERVED = 1, 2
BOOT_LOADER_NAME = "pyvmm"

# The PC low-memory picture a BIOS reports and kernels expect (QEMU with SeaBIOS reports the same
# three low entries): usable RAM up to the EBDA, the EBDA reserved, the VGA/option-ROM window
# absent, the BIOS ROM reserved, then RAM from 1 MiB.
EBDA = 0x9FC00
VGA_WINDOW = 0xA0000
BIOS_ROM = 0xF0000
HIGH_MEMORY = 0x100000

# Where the information structure may go: low memory from page 1 up to below the initial stack
# Machine.boot gives the kernel, leaving that stack room to grow before the kernel switches to its
# own; in the first gap there that the kernel, its modules and the boot structures leave.
INFO_AREA = LOW_WINDOW
_page_up = page_up


# --- the header ----------------------------------------------------------------------------
def find_header(data: bytes) -> int | None:
    """Offset of the first valid header: magic, a checksum that makes magic + flags + checksum
    zero, 4-byte aligned and wholly within the first 8 KiB. None when there is none."""
    needle = struct.pack("<I", HEADER_MAGIC)
    last = min(len(data), SEARCH_BYTES) - MAGIC_FIELDS
    if last < 0:
        return None
    pos = data.find(needle, 0, last + 4)
    while 0 <= pos <= last:
        if pos % 4 == 0:
            magic, flags, checksum = struct.unpack_from("<III", data, pos)
            if (magic + flags + checksum) & 0xFFFFFFFF == 0:
                return pos
        pos = data.find(needle, pos + 1, last + 4)
    return None


class MultibootHeader(TupleRecord):
    offset: int  # in the file
    flags: int
    # the a.out kludge's addresses: present exactly when flag 16 is set
    header_addr: int | None = None
    load_addr: int | None = None
    load_end_addr: int | None = None
    bss_end_addr: int | None = None
    entry_addr: int | None = None
    video: tuple[int, int, int, int] | None = None  # mode_type, width, height, depth (flag 2)

    @property
    def aout_kludge(self) -> bool:
        return bool(self.flags & FLAG_AOUT_KLUDGE)

    def notes(self) -> list[str]:
        """Requests pyvmm leaves unmet without refusing the kernel, for the user to see."""
        if self.flags & FLAG_VIDEO_MODE:
            return [
                "the multiboot kernel asks for a video mode (flag 2); pyvmm has no display, so it boots "
                "without video information, as under QEMU"
            ]
        return []


def parse_header(data: bytes) -> MultibootHeader | None:
    """The image's multiboot header, None if it has none; ImageError if it asks for what
    pyvmm cannot give.

    Of the required bits only 0 (page-aligned modules), 1 (memory information) and 2 (video mode)
    are defined. 0 and 1 are always satisfied. For 2 QEMU prints a warning and boots the kernel
    with no video information, and so does pyvmm (see `notes()`): refusing would stop kernels
    that run under QEMU. Any other required bit is one the specification says to refuse."""
    off = find_header(data)
    if off is None:
        return None
    flags = struct.unpack_from("<I", data, off + 4)[0]
    unknown = flags & REQUIRED_BITS & ~KNOWN_REQUIRED
    if unknown:
        raise ImageError(
            f"multiboot header at offset {off:#x} requires features pyvmm does not know (flag bits {unknown:#x})"
        )
    fields: dict[str, int] = {}
    if flags & FLAG_AOUT_KLUDGE:
        if off + AOUT_FIELDS_END > len(data):
            raise ImageError(
                f"multiboot header at offset {off:#x} sets flag 16 but its address fields run past the end of the file"
            )
        names = ("header_addr", "load_addr", "load_end_addr", "bss_end_addr", "entry_addr")
        fields = dict(zip(names, struct.unpack_from("<5I", data, off + MAGIC_FIELDS), strict=True))
    video = None
    if flags & FLAG_VIDEO_MODE and off + VIDEO_FIELDS_END <= len(data):
        mode_type, width, height, depth = struct.unpack_from("<4I", data, off + AOUT_FIELDS_END)
        video = (mode_type, width, height, depth)
    return MultibootHeader(off, flags, video=video, **fields)


# --- the kernel image ----------------------------------------------------------------------
class KernelImage(TupleRecord):
    segments: tuple[Segment, ...]
    entry: int

    @property
    def end(self) -> int:
        return max(s.end for s in self.segments)


def kernel_image(data: bytes, header: MultibootHeader, mem_size: int) -> KernelImage:
    """What to load and where to enter: from the header's addresses when flag 16 is set (it takes
    precedence even in an ELF file, as the specification and QEMU have it), else from the ELF
    program headers."""
    if header.aout_kludge:
        return _aout_image(data, header, mem_size)
    if data[:4] != ELF_MAGIC:
        raise ImageError(
            f"multiboot header at offset {header.offset:#x} gives no load addresses (flag 16 is clear) "
            "and the image is not ELF, so there is no way to tell where it loads"
        )
    # QEMU refuses ELF64 here ("give a 32bit one"); GRUB loads it. Segments and entry are
    # physical addresses below 4 GiB either way, and the kernel is entered in 32-bit protected
    # mode as the specification says, so pyvmm loads it as GRUB does.
    elf = parse_elf(data, mem_size)
    return KernelImage(elf.segments, resolve_entry(elf.entry, elf.segments))


def _aout_image(data: bytes, header: MultibootHeader, mem_size: int) -> KernelImage:
    assert header.header_addr is not None and header.load_addr is not None
    assert header.load_end_addr is not None and header.bss_end_addr is not None and header.entry_addr is not None
    header_addr, load_addr, entry = header.header_addr, header.load_addr, header.entry_addr
    # header_addr is where the header itself lands, so the file offset of load_addr follows from
    # the header's own offset.
    if header_addr < load_addr:
        raise ImageError(f"multiboot header_addr {header_addr:#x} is below load_addr {load_addr:#x}")
    if header_addr - load_addr > header.offset:
        raise ImageError(
            f"multiboot load_addr {load_addr:#x} would start {header_addr - load_addr - header.offset:#x} "
            "bytes before the beginning of the file"
        )
    file_offset = header.offset - (header_addr - load_addr)
    if header.load_end_addr:
        if header.load_end_addr < load_addr:
            raise ImageError(f"multiboot load_end_addr {header.load_end_addr:#x} is below load_addr {load_addr:#x}")
        size = header.load_end_addr - load_addr
        if file_offset + size > len(data):
            raise ImageError(
                f"multiboot load_end_addr {header.load_end_addr:#x} asks for {size:#x} bytes from file offset "
                f"{file_offset:#x}, but the file has only {len(data):#x} bytes"
            )
    else:
        size = len(data) - file_offset  # 0 means: the rest of the file
    memsz = size
    if header.bss_end_addr:
        if header.bss_end_addr < load_addr + size:
            raise ImageError(
                f"multiboot bss_end_addr {header.bss_end_addr:#x} is below the end of the loaded part "
                f"({load_addr + size:#x})"
            )
        memsz = header.bss_end_addr - load_addr
    area = Segment(load_addr, bytes(data[file_offset : file_offset + size]), memsz, load_addr, "multiboot load area")
    if not load_addr <= entry < area.end:
        raise ImageError(f"multiboot entry_addr {entry:#x} is outside the loaded image ({load_addr:#x}-{area.end:#x})")
    check_segments([area], mem_size)
    return KernelImage((area,), entry)


# --- modules -------------------------------------------------------------------------------
class Module(TupleRecord):
    path: str
    args: str
    data: bytes

    @property
    def string(self) -> str:
        """The module's string as QEMU hands it over: the -initrd text as given, file then arguments."""
        return f"{self.path} {self.args}" if self.args else self.path


def read_module(path: str, args: str = "") -> Module:
    return Module(path, args, read_guest_file(path, "module"))


class PlacedModule(TupleRecord):
    start: int
    data: bytes
    string: str

    @property
    def end(self) -> int:
        return self.start + len(self.data)


# Low memory a module must not cover besides what the caller names: page 0, and everything from
# below the initial stack up to 1 MiB (the stack, the EBDA and the ROM window the memory map
# reports as not usable).
_MODULE_KEEP_OUT = ((0, L.PAGE_SIZE), (INFO_AREA[1], HIGH_MEMORY))


def place_modules(
    modules: Sequence[Module], after: int, mem_size: int, keep_out: Sequence[tuple[int, int]] = ()
) -> list[PlacedModule]:
    """Put each module on its own page boundary, in order, from the first page at or above
    `after` (the kernel's end), as QEMU does whatever flag 0 says; a module that would cover one
    of the `keep_out` ranges (the kernel's segments, the boot structures) moves past it."""
    placed: list[PlacedModule] = []
    at = _page_up(after)
    avoid = sorted([*_MODULE_KEEP_OUT, *keep_out])
    for m in modules:
        moved = True
        while moved:
            moved = False
            for lo, hi in [*avoid, *((p.start, p.end) for p in placed)]:
                if at < hi and lo < at + max(len(m.data), 1):
                    at = _page_up(hi)
                    moved = True
        end = at + len(m.data)
        if end > mem_size:
            raise ImageError(
                f"module {m.path!r} ({len(m.data)} bytes) does not fit in guest RAM: placed at {at:#x} it would "
                f"end at {end:#x}, beyond {mem_size:#x}; use a larger --mem"
            )
        placed.append(PlacedModule(at, m.data, m.string))
        at = _page_up(end)
    return placed


# --- the boot information structure --------------------------------------------------------
def kernel_cmdline(path: str, append: str) -> str:
    """The kernel's command line as QEMU builds it: the image path as given, a space, then the
    -append text. QEMU keeps the space even when there is no -append, and so does pyvmm, so a
    kernel that prints or parses its command line sees the same bytes."""
    return f"{path} {append}"


def _cstring(text: str, what: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")  # surrogateescape: file names that are not UTF-8
    if b"\0" in raw:
        raise ConfigError(f"{what} contains a NUL byte, which would cut it short for the kernel")
    return raw + b"\0"


# Above 1 MiB, the map QEMU's pc machine with SeaBIOS reports, so kernels that print it agree:
# SeaBIOS keeps the top 128 KiB of RAM for its tables, QEMU reserves four pages for KVM's TSS and
# identity map below 4 GiB and the BIOS flash at the top, and on AMD CPUs with 40 or more physical
# address bits it advertises the HyperTransport hole below 1 TiB.
FIRMWARE_TOP_RESERVED = 0x20000
QEMU_KVM_PAGES = (0xFEFFC000, 0x4000)
BIOS_FLASH = (0xFFFC0000, 0x40000)
AMD_HT_HOLE = (0xFD00000000, 0x300000000)


def memory_map(mem_size: int, amd_ht_hole: bool = False) -> list[tuple[int, int, int]]:
    """(base, length, type) entries of the memory map handed to the kernel."""
    entries = [
        (0, min(mem_size, EBDA), MEMORY_AVAILABLE),
        (EBDA, VGA_WINDOW - EBDA, MEMORY_RESERVED),
        (BIOS_ROM, HIGH_MEMORY - BIOS_ROM, MEMORY_RESERVED),
    ]
    if mem_size > HIGH_MEMORY + FIRMWARE_TOP_RESERVED:
        top = mem_size - FIRMWARE_TOP_RESERVED
        entries.append((HIGH_MEMORY, top - HIGH_MEMORY, MEMORY_AVAILABLE))
        entries.append((top, FIRMWARE_TOP_RESERVED, MEMORY_RESERVED))
    elif mem_size > HIGH_MEMORY:
        entries.append((HIGH_MEMORY, mem_size - HIGH_MEMORY, MEMORY_AVAILABLE))
    entries += [(*QEMU_KVM_PAGES, MEMORY_RESERVED), (*BIOS_FLASH, MEMORY_RESERVED)]
    if amd_ht_hole:
        entries.append((*AMD_HT_HOLE, MEMORY_RESERVED))
    return entries


def memory_sizes(mem_size: int) -> tuple[int, int]:
    """mem_lower and mem_upper in KiB: RAM below the EBDA (639 KiB, what a PC BIOS reports and the
    map above says), and the usable RAM from 1 MiB up to what the firmware keeps at the top."""
    usable_top = mem_size - FIRMWARE_TOP_RESERVED if mem_size > HIGH_MEMORY + FIRMWARE_TOP_RESERVED else mem_size
    return min(mem_size, EBDA) // 1024, max(0, usable_top - HIGH_MEMORY) // 1024


class InfoBlock(TupleRecord):
    address: int  # of the information structure: the kernel's EBX
    writes: list[tuple[int, bytes]]  # (gpa, bytes) to place in guest RAM


def build_info(
    mem_size: int,
    cmdline: str,
    modules: Sequence[PlacedModule],
    occupied: Sequence[tuple[int, int] | Occupied],
    amd_ht_hole: bool = False,
) -> InfoBlock:
    """The information structure, its memory map, module list and strings, as one block.

    The block goes in low memory, in the first page-aligned gap of INFO_AREA that avoids the
    `occupied` [start, end) ranges (kernel segments, modules, the boot structures): below 640 KiB
    so any kernel can reach it before it sets up paging, never over page 0. QEMU puts the
    structure at 0x9500 and the map at 0x9000 whatever the kernel covers (its boot GDT lives in an
    option ROM), and the strings and module list just above the kernel; pyvmm keeps all of it in
    one block, where nothing of the kernel's is."""
    strings = [_cstring(cmdline, "the kernel command line")]
    strings += [_cstring(m.string, f"the string of module {m.string!r}") for m in modules]
    strings.append(_cstring(BOOT_LOADER_NAME, "the boot loader name"))
    mmap = memory_map(mem_size, amd_ht_hole)

    mmap_off = INFO_SIZE
    mods_off = mmap_off + MMAP_ENTRY.size * len(mmap)
    strings_off = mods_off + MODULE_ENTRY.size * len(modules)
    size = strings_off + sum(len(s) for s in strings)
    base = _info_base(size, mem_size, occupied)

    block = bytearray(size)
    for i, (start, length, kind) in enumerate(mmap):
        MMAP_ENTRY.pack_into(block, mmap_off + i * MMAP_ENTRY.size, MMAP_ENTRY_SIZE_FIELD, start, length, kind)
    string_addrs = []
    pos = strings_off
    for s in strings:
        block[pos : pos + len(s)] = s
        string_addrs.append(base + pos)
        pos += len(s)
    for i, m in enumerate(modules):
        MODULE_ENTRY.pack_into(block, mods_off + i * MODULE_ENTRY.size, m.start, m.end, string_addrs[1 + i], 0)

    mem_lower, mem_upper = memory_sizes(mem_size)
    for off, value in (
        (OFF_FLAGS, INFO_FLAGS),
        (OFF_MEM_LOWER, mem_lower),
        (OFF_MEM_UPPER, mem_upper),
        (OFF_BOOT_DEVICE, BOOT_DEVICE),
        (OFF_CMDLINE, string_addrs[0]),
        (OFF_MODS_COUNT, len(modules)),
        (OFF_MODS_ADDR, base + mods_off),  # set even with no modules, as QEMU does
        (OFF_MMAP_LENGTH, MMAP_ENTRY.size * len(mmap)),
        (OFF_MMAP_ADDR, base + mmap_off),  # points at the first entry's size field
        (OFF_BOOT_LOADER_NAME, string_addrs[-1]),
    ):
        struct.pack_into("<I", block, off, value)
    return InfoBlock(base, [(base, bytes(block))])


def _info_base(size: int, mem_size: int, occupied: Sequence[tuple[int, int] | Occupied]) -> int:
    window = (INFO_AREA[0], min(INFO_AREA[1], mem_size))
    ranges = [o if isinstance(o, Occupied) else Occupied(o[0], o[1], f"{o[0]:#x}-{o[1]:#x}") for o in occupied]
    base = find_gap(size, ranges, window)
    if base is None:
        raise ImageError(
            f"no room for the multiboot information ({size} bytes) in low memory {window[0]:#x}-{window[1]:#x}: "
            f"it is covered by {describe_window(ranges, window)}, or the command line is too long"
        )
    return base
