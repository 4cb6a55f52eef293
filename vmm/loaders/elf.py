"""ELF executables as a boot loader sees them: the PT_LOAD segments to copy and where to enter.

Only the file header and the program-header table are read. Sections, symbols and relocations
play no part in putting a kernel into memory, so a stripped kernel loads the same as one with
debug information.

Segments are placed at their physical addresses (p_paddr), as QEMU and GRUB do: a kernel linked
to run at a high virtual address says through p_paddr where it wants to sit in RAM.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence

from vmm.errors import ImageError
from vmm.loaders.magic import ELF_MAGIC, ELFCLASS32, ELFCLASS64
from vmm.record import TupleRecord

ELFDATA2LSB = 1
ET_EXEC, ET_DYN = 2, 3
EM_386, EM_X86_64 = 3, 62
PT_LOAD = 1
PN_XNUM = 0xFFFF  # e_phnum escape: the real count lives in section 0, which a loader has no business reading

# Header layouts after e_ident: the 32- and 64-bit forms differ only in the width of the
# address and offset fields.
_EHDR = {
    ELFCLASS32: struct.Struct("<HHIIIIIHHHHHH"),  # 36 bytes + 16 of e_ident = 52
    ELFCLASS64: struct.Struct("<HHIQQQIHHHHHH"),  # 48 + 16 = 64
}
_PHDR32 = struct.Struct("<IIIIIIII")  # type, offset, vaddr, paddr, filesz, memsz, flags, align
_PHDR64 = struct.Struct("<IIQQQQQQ")  # type, flags, offset, vaddr, paddr, filesz, memsz, align

_MACHINES = {EM_386: "x86", EM_X86_64: "x86-64"}


class Segment(TupleRecord):
    """Bytes to place at `paddr`, followed by zeroes up to `memsz` (the BSS part)."""

    paddr: int
    data: bytes
    memsz: int
    vaddr: int
    name: str  # how error messages refer to it: "segment 2", "multiboot load area"

    @property
    def end(self) -> int:
        return self.paddr + self.memsz

    def describe(self) -> str:
        return f"{self.name} ({self.paddr:#x}-{self.end:#x})"


class ElfImage(TupleRecord):
    elf_class: int  # 32 or 64
    machine: int  # e_machine: EM_386 or EM_X86_64
    entry: int  # e_entry exactly as the file says; see resolve_entry()
    segments: tuple[Segment, ...]


def parse_elf(data: bytes, mem_size: int | None = None) -> ElfImage:
    """Read the loadable segments of an x86 or x86-64 ELF executable.

    With `mem_size`, also refuse segments that leave guest RAM or cover the monitor's boot
    structures (see check_segments)."""
    if data[:4] != ELF_MAGIC:
        raise ImageError("not an ELF file (no \\x7fELF magic)")
    if len(data) < 16:
        raise ImageError(f"ELF file truncated: {len(data)} bytes, shorter than its identification")
    elf_class, encoding = data[4], data[5]
    if elf_class not in _EHDR:
        raise ImageError(f"ELF class {elf_class} is neither 32-bit (1) nor 64-bit (2)")
    bits = 32 if elf_class == ELFCLASS32 else 64
    if encoding != ELFDATA2LSB:
        raise ImageError(f"ELF data encoding {encoding} is not little-endian, so it cannot be an x86 image")
    ehdr = _EHDR[elf_class]
    if len(data) < 16 + ehdr.size:
        raise ImageError(
            f"truncated ELF header: the file has {len(data)} bytes, a {bits}-bit header needs {16 + ehdr.size}"
        )
    e_type, machine, _version, entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum, *_ = ehdr.unpack_from(data, 16)
    if e_type not in (ET_EXEC, ET_DYN):
        raise ImageError(f"ELF type {e_type} is not an executable (a relocatable object or core file cannot be booted)")
    if machine not in _MACHINES:
        raise ImageError(f"unsupported ELF machine {machine}: only x86 ({EM_386}) and x86-64 ({EM_X86_64}) run here")

    segments = _program_headers(data, elf_class, phoff, phentsize, phnum)
    if not segments:
        raise ImageError("no PT_LOAD segment: the ELF file has nothing to load")
    _refuse_overlaps(segments)
    if mem_size is not None:
        check_segments(segments, mem_size)
    return ElfImage(bits, machine, entry, tuple(segments))


def _program_headers(data: bytes, elf_class: int, phoff: int, phentsize: int, phnum: int) -> list[Segment]:
    phdr = _PHDR32 if elf_class == ELFCLASS32 else _PHDR64
    if phnum == 0:
        return []
    if phnum == PN_XNUM:
        raise ImageError("bad program-header table: extended numbering (e_phnum 0xffff) is not supported")
    if phentsize < phdr.size:
        raise ImageError(f"bad program-header table: entries of {phentsize} bytes, at least {phdr.size} needed")
    table_end = phoff + phnum * phentsize
    if table_end > len(data):
        raise ImageError(
            f"bad program-header table: {phnum} entries of {phentsize} bytes at offset {phoff:#x} "
            f"run to {table_end:#x}, past the end of the file ({len(data):#x} bytes)"
        )
    out = []
    for i in range(phnum):
        fields = phdr.unpack_from(data, phoff + i * phentsize)
        if elf_class == ELFCLASS32:
            p_type, offset, vaddr, paddr, filesz, memsz, _pflags, _align = fields
        else:
            p_type, _pflags, offset, vaddr, paddr, filesz, memsz, _align = fields
        if p_type != PT_LOAD:
            continue
        name = f"segment {i}"
        if filesz > memsz:
            raise ImageError(f"{name}: file size {filesz:#x} is larger than its memory size {memsz:#x}")
        if offset + filesz > len(data):
            raise ImageError(
                f"{name}: file bytes {offset:#x}-{offset + filesz:#x} lie outside the file ({len(data):#x} bytes)"
            )
        if memsz == 0:
            continue  # occupies no memory: nothing to place and nothing to collide with
        out.append(Segment(paddr, bytes(data[offset : offset + filesz]), memsz, vaddr, name))
    return out


def _refuse_overlaps(segments: Sequence[Segment]) -> None:
    # Loading one over the other would silently make the result depend on segment order.
    ordered = sorted(segments, key=lambda s: s.paddr)
    for a, b in itertools.pairwise(ordered):
        if b.paddr < a.end:
            raise ImageError(f"{a.describe()} and {b.describe()} overlap")


def check_segments(segments: Sequence[Segment], mem_size: int) -> None:
    """Refuse segments outside guest RAM. (The monitor's own structures go around the segments,
    wherever they are: vmm.loaders.placement.)"""
    for s in segments:
        if s.end > mem_size:
            raise ImageError(
                f"{s.name} at {s.paddr:#x}-{s.end:#x} lies outside guest RAM ({mem_size:#x} bytes); use a larger --mem"
            )


def resolve_entry(entry: int, segments: Sequence[Segment]) -> int:
    """The physical address to start at for e_entry `entry`.

    An entry inside a segment's physical range is used as is: that is what QEMU jumps to. A
    higher-half kernel may give its entry as a virtual address; with paging off it would run
    off into nothing, so such an entry is moved to where its bytes were loaded, as GRUB does."""
    for s in segments:
        if s.paddr <= entry < s.end:
            return entry
    for s in segments:
        if s.vaddr <= entry < s.vaddr + s.memsz:
            return s.paddr + (entry - s.vaddr)
    raise ImageError(f"entry point {entry:#x} is not inside any loaded segment")
