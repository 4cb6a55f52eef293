"""Multiboot v1: the header's flags and a.out addresses, loading by a.out kludge and by ELF, the
information structure byte by byte, modules, placement in low memory, and every refusal."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_loader_images import FakeMachine, Seg, at_offset, elf, fake_machine, gcc_build, mb_header
from vmm.cpu.modes import BootArea, CpuMode
from vmm.errors import ConfigError, ImageError
from vmm.loaders import load_kernel
from vmm.loaders.multiboot import (
    INFO_AREA,
    Module,
    build_info,
    kernel_image,
    memory_map,
    parse_header,
    place_modules,
)

MEM = 16 << 20
AOUT = 1 << 16
ENTRY_CODE = b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp back to the hlt


@pytest.fixture
def machine() -> Iterator[FakeMachine]:
    yield from fake_machine(MEM)


def aout_kernel(load: int = 0x100000, code: bytes = ENTRY_CODE, bss: int = 0, flags: int = 0) -> bytes:
    """A flat a.out-kludge kernel: the header first, then `code`; loads whole at `load`."""
    size = 32 + len(code)
    header = mb_header(AOUT | flags, (load, load, load + size, load + size + bss if bss else 0, load + 32))
    return header + code


def info_at(m: FakeMachine) -> int:
    regs = m.boots[-1].regs
    assert regs is not None
    return regs["rbx"]


# --- the header ---------------------------------------------------------------------------------
def test_parse_header_without_addresses() -> None:
    h = parse_header(bytes(8) + mb_header(0x3) + bytes(16))
    assert h is not None
    assert (h.offset, h.flags, h.aout_kludge, h.load_addr, h.entry_addr) == (8, 0x3, False, None, None)


def test_parse_header_a_out_fields() -> None:
    h = parse_header(mb_header(AOUT, (0x100000, 0x100000, 0x101000, 0x102000, 0x100020)))
    assert h is not None
    assert h.aout_kludge
    fields = (h.header_addr, h.load_addr, h.load_end_addr, h.bss_end_addr, h.entry_addr)
    assert fields == (0x100000, 0x100000, 0x101000, 0x102000, 0x100020)


def test_no_header_is_none() -> None:
    assert parse_header(b"\xf4" * 64) is None


@pytest.mark.parametrize("bit", range(3, 16))
def test_unknown_required_flag_is_refused(bit: int) -> None:
    pattern = rf"^multiboot header at offset 0x0 requires features pyvmm does not know \(flag bits {1 << bit:#x}\)$"
    with pytest.raises(ImageError, match=pattern):
        parse_header(mb_header(1 << bit | 0x3))


def test_unknown_optional_flags_are_ignored() -> None:
    h = parse_header(mb_header(0xFFFE0003))
    assert h is not None and h.notes() == []


def test_video_mode_request_is_noted_not_refused(machine: FakeMachine) -> None:
    # QEMU warns and boots such a kernel without video information; so does pyvmm
    data = mb_header(AOUT | 0x4, (0x100000, 0x100000, 0, 0, 0x100030)) + struct.pack("<4I", 0, 1024, 768, 32)
    data += ENTRY_CODE
    h = parse_header(data)
    assert h is not None and h.video == (0, 1024, 768, 32)
    k = load_kernel(machine, data, "fb.bin")
    assert len(k.notes) == 1 and "video mode" in k.notes[0]
    assert machine.u32(info_at(machine)) & (1 << 11 | 1 << 12) == 0  # no VBE or framebuffer fields


def test_truncated_a_out_fields() -> None:
    data = mb_header(AOUT)[:12] + bytes(8)
    with pytest.raises(ImageError, match=r"sets flag 16 but its address fields run past the end of the file$"):
        parse_header(data)


# --- a.out kludge loading -----------------------------------------------------------------------
def test_a_out_loads_from_header_relative_offset(machine: FakeMachine) -> None:
    # header at file offset 0x1000, claiming to sit 0x10 bytes into the load area: the load area
    # starts at file offset 0xff0, and the 0x10 bytes before the header are part of it
    prefix = b"P" * 0xFF0 + b"0123456789abcdef"
    header = mb_header(AOUT, (0x200010, 0x200000, 0x200040, 0x201000, 0x200030))
    data = prefix + header + ENTRY_CODE + b"trailing bytes not loaded"
    machine.memory.fill(0x200000, 0x2000, 0xEE)
    k = load_kernel(machine, data, "aout.bin")
    assert (k.format, k.entry, k.mode) == ("multiboot", 0x200030, CpuMode.PROTECTED)
    assert machine.memory.read(0x200000, 0x10) == b"0123456789abcdef"
    assert machine.memory.read(0x200010, 32) == header
    assert machine.memory.read(0x200030, 16) == ENTRY_CODE + b"trailing byt"  # load_end_addr cuts here
    assert machine.memory.read(0x200040, 0xFC0) == bytes(0xFC0)  # BSS up to bss_end_addr
    assert machine.memory.read(0x201000, 4) == b"\xee" * 4  # and not beyond


def test_a_out_load_end_zero_means_rest_of_file(machine: FakeMachine) -> None:
    data = mb_header(AOUT, (0x100000, 0x100000, 0, 0, 0x100020)) + ENTRY_CODE + b"tail"
    load_kernel(machine, data, "k")
    assert machine.memory.read(0x100000, len(data)) == data


def test_a_out_kernel_boot_registers(machine: FakeMachine) -> None:
    k = load_kernel(machine, aout_kernel(), "k")
    boot = machine.boots[0]
    assert (boot.mode, boot.entry) == (CpuMode.PROTECTED, 0x100020)
    assert boot.regs == {"rax": 0x2BADB002, "rbx": k.info_address}


def test_a_out_takes_precedence_over_elf(machine: FakeMachine) -> None:
    # an ELF file whose header sets flag 16 loads by the header's addresses, not its segments
    head = elf(32, [Seg(0x100000, b"elf code")])
    offset = len(head)
    assert offset % 4 == 0
    header = mb_header(AOUT, (0x300000 + offset, 0x300000, 0, 0, 0x300000 + offset + 32))
    data = head + header + ENTRY_CODE
    k = load_kernel(machine, data, "k")
    assert k.entry == 0x300000 + offset + 32
    assert machine.memory.read(0x300000, len(data)) == data
    assert machine.memory.read(0x100000, 8) == bytes(8)


@pytest.mark.parametrize(
    ("aout", "offset", "pattern"),
    [
        ((0x100000, 0x100010, 0, 0, 0x100010), 0, r"header_addr 0x100000 is below load_addr 0x100010$"),
        ((0x100040, 0x100000, 0, 0, 0x100040), 0x20, r"load_addr 0x100000 would start 0x20 bytes before the"),
        ((0x100000, 0x100000, 0xFFFFF, 0, 0x100000), 0, r"load_end_addr 0xfffff is below load_addr 0x100000$"),
        ((0x100000, 0x100000, 0x101000, 0, 0x100000), 0, r"load_end_addr 0x101000 asks for 0x1000 bytes from file"),
        ((0x100000, 0x100000, 0x100020, 0x100010, 0x100000), 0, r"bss_end_addr 0x100010 is below the end of the"),
        ((0x100000, 0x100000, 0x100024, 0, 0x100024), 0, r"entry_addr 0x100024 is outside the loaded image"),
        ((0x100000, 0x100000, 0, 0x1100000, 0x100020), 0, r"multiboot load area at 0x100000-0x1100000 lies outside"),
    ],
)
def test_a_out_refusals(machine: FakeMachine, aout: tuple[int, int, int, int, int], offset: int, pattern: str) -> None:
    data = at_offset(offset, mb_header(AOUT, aout) + ENTRY_CODE)
    with pytest.raises(ImageError, match=pattern) as e:
        load_kernel(machine, data, "bad.bin")
    assert str(e.value).startswith("image 'bad.bin': ")
    assert machine.boots == []


# --- ELF multiboot kernels ----------------------------------------------------------------------
@pytest.mark.parametrize("bits", [32, 64])
def test_elf_multiboot_kernel(machine: FakeMachine, bits: int) -> None:
    # ELF64 too, as GRUB loads it (QEMU refuses it); it still starts in 32-bit protected mode
    code = mb_header(0x3) + ENTRY_CODE
    data = elf(bits, [Seg(0x100000, code), Seg(0x104000, b"data", memsz=0x2000)], entry=0x10000C)
    k = load_kernel(machine, data, "k.elf")
    assert (k.format, k.entry, k.mode) == ("multiboot", 0x10000C, CpuMode.PROTECTED)
    assert machine.memory.read(0x100000, len(code)) == code
    assert machine.memory.read(0x104000, 0x2000) == b"data" + bytes(0x1FFC)


def test_elf_multiboot_virtual_entry_is_translated(machine: FakeMachine) -> None:
    data = elf(32, [Seg(0x100000, mb_header() + ENTRY_CODE, vaddr=0xC0100000)], entry=0xC010000C)
    assert load_kernel(machine, data, "k").entry == 0x10000C


def test_not_elf_without_addresses_is_refused(machine: FakeMachine) -> None:
    with pytest.raises(ImageError, match=r"gives no load addresses \(flag 16 is clear\) and the image is not ELF"):
        load_kernel(machine, mb_header(0x3) + ENTRY_CODE, "k")


def test_elf_multiboot_segment_refusals_name_the_image(machine: FakeMachine) -> None:
    data = elf(32, [Seg(0x100000, mb_header()), Seg(0x100008, b"x")])
    with pytest.raises(ImageError, match=r"^image 'k': segment 0 \(0x100000-0x10000c\) and segment 1 "):
        load_kernel(machine, data, "k")


def test_flat_options_are_refused_for_multiboot(machine: FakeMachine) -> None:
    with pytest.raises(ConfigError, match=r"^--load applies only to flat binaries: 'k' is a multiboot kernel"):
        load_kernel(machine, aout_kernel(), "k", load=0x100000)
    with pytest.raises(ConfigError, match=r"^--mode long does not apply: 'k' is a multiboot kernel"):
        load_kernel(machine, aout_kernel(), "k", mode=CpuMode.LONG)
    load_kernel(machine, aout_kernel(), "k", mode=CpuMode.PROTECTED)


# --- the information structure --------------------------------------------------------------------
def expected_mmap(mem_size: int) -> bytes:
    # QEMU with SeaBIOS: the top 128 KiB of RAM, KVM's four pages and the BIOS flash are reserved
    top = mem_size - 0x20000
    entries = [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2), (0x100000, top - 0x100000, 1),
               (top, 0x20000, 2), (0xFEFFC000, 0x4000, 2), (0xFFFC0000, 0x40000, 2)]  # fmt: skip
    return b"".join(struct.pack("<IQQI", 20, base, length, kind) for base, length, kind in entries)


def test_info_structure_byte_by_byte(machine: FakeMachine, tmp_path: Path) -> None:
    (tmp_path / "initrd.img").write_bytes(b"I" * 5000)
    (tmp_path / "m2").write_bytes(b"second")
    mod1, mod2 = str(tmp_path / "initrd.img"), str(tmp_path / "m2")
    kernel = aout_kernel(bss=0x3000)  # ends at 0x103024
    k = load_kernel(
        machine,
        kernel,
        "/boot/kernel.bin",
        cmdline="console=ttyS0 quiet",
        modules=[(mod1, "root=/dev/ram"), (mod2, "")],
    )
    info = k.info_address
    assert info is not None and info == info_at(machine)
    raw = machine.memory.read(info, 88)
    (flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr) = struct.unpack_from("<7I", raw)
    assert flags == 0x24F  # memory, boot device, cmdline, mods, mmap, boot loader name
    assert (mem_lower, mem_upper) == (639, (MEM - (1 << 20) - 0x20000) // 1024)
    assert boot_device == 0x8000FFFF  # what QEMU reports: first hard disk, whole disk
    assert machine.cstring(cmdline) == "/boot/kernel.bin console=ttyS0 quiet"
    assert mods_count == 2
    assert raw[28:44] == bytes(16)  # no symbol table
    mmap_length, mmap_addr = struct.unpack_from("<II", raw, 44)
    assert (mmap_length, machine.memory.read(mmap_addr, mmap_length)) == (7 * 24, expected_mmap(MEM))
    assert raw[52:64] == bytes(12)  # no drives, no config table
    assert machine.cstring(struct.unpack_from("<I", raw, 64)[0]) == "pyvmm"
    assert raw[68:88] == bytes(20)  # no APM, no VBE

    m1 = struct.unpack_from("<4I", machine.memory.read(mods_addr, 32), 0)
    m2 = struct.unpack_from("<4I", machine.memory.read(mods_addr, 32), 16)
    assert m1[:2] == (0x104000, 0x104000 + 5000)  # first page above the kernel's BSS
    assert m2[:2] == (0x106000, 0x106006)  # the next page after the first module
    assert (m1[3], m2[3]) == (0, 0)
    assert machine.cstring(m1[2]) == f"{mod1} root=/dev/ram"
    assert machine.cstring(m2[2]) == mod2
    assert machine.memory.read(0x104000, 5000) == b"I" * 5000
    assert machine.memory.read(0x106000, 6) == b"second"


def test_cmdline_without_append_keeps_qemus_trailing_space(machine: FakeMachine) -> None:
    k = load_kernel(machine, aout_kernel(), "kernel.bin")
    assert k.info_address is not None
    cmdline = machine.u32(k.info_address + 16)
    assert machine.memory.read(cmdline, 12) == b"kernel.bin \0"


def test_no_modules(machine: FakeMachine) -> None:
    k = load_kernel(machine, aout_kernel(), "k")
    assert k.info_address is not None
    assert machine.u32(k.info_address + 20) == 0
    assert machine.u32(k.info_address + 24) != 0  # still points where the list would be, as QEMU does


def test_info_lives_in_low_memory_clear_of_everything(machine: FakeMachine) -> None:
    k = load_kernel(machine, aout_kernel(), "k")
    info = k.info_address
    assert info is not None
    # page 0 is never used; the boot GDT and TSS come first, then the information
    assert info == INFO_AREA[0] + BootArea.size(CpuMode.PROTECTED) == 0x6000
    assert info + 88 < 0xA0000
    # every pointer in the block points into the block, which stays below the initial stack
    for off in (16, 24, 48, 64):
        assert info <= machine.u32(info + off) < INFO_AREA[1]


def test_info_moves_past_a_kernel_loaded_low(machine: FakeMachine) -> None:
    kernel = aout_kernel(load=0x6000, bss=0x2000)  # occupies 0x6000-0x8024, after the boot structures
    k = load_kernel(machine, kernel, "low.bin")
    assert k.info_address == 0x9000


def test_no_room_for_info_is_refused(machine: FakeMachine) -> None:
    kernel = aout_kernel(load=0x6000, bss=INFO_AREA[1] - 0x6000)
    with pytest.raises(ImageError, match=r"no room for the multiboot information \(\d+ bytes\) in low memory 0x1000-"):
        load_kernel(machine, kernel, "huge-low.bin")


def test_build_info_avoids_occupied_ranges_directly() -> None:
    info = build_info(MEM, "k", [], [(0x1000, 0xC001), (0xD000, 0xE000)])
    assert info.address == 0xE000
    assert [gpa for gpa, _ in info.writes] == [0xE000]


def test_small_ram_memory_map_and_sizes() -> None:
    mem = 512 << 10
    assert memory_map(mem) == [
        (0, mem, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2), (0xFEFFC000, 0x4000, 2), (0xFFFC0000, 0x40000, 2),
    ]  # fmt: skip
    assert memory_map(mem, amd_ht_hole=True)[-1] == (0xFD00000000, 0x300000000, 2)
    block = build_info(mem, "k", [], []).writes[0][1]
    assert struct.unpack_from("<3I", block) == (0x24F, 512, 0)


def test_nul_in_cmdline_is_refused(machine: FakeMachine) -> None:
    with pytest.raises(ConfigError, match="command line contains a NUL byte"):
        load_kernel(machine, aout_kernel(), "k", cmdline="a\0b")


# --- modules ----------------------------------------------------------------------------------------
def test_missing_module_is_named(machine: FakeMachine, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.img")
    with pytest.raises(ImageError, match=rf"^module '{missing}' does not exist$"):
        load_kernel(machine, aout_kernel(), "k", modules=[(missing, "x")])
    assert machine.boots == []


def test_directory_module_is_named(machine: FakeMachine, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=rf"^module '{tmp_path}' is a directory, not a regular file$"):
        load_kernel(machine, aout_kernel(), "k", modules=[(str(tmp_path), "")])


def test_module_too_big_for_ram() -> None:
    with pytest.raises(ImageError, match=r"^module 'big' \(2097152 bytes\) does not fit in guest RAM: placed at 0x"):
        place_modules([Module("big", "", bytes(2 << 20))], 0x101000, 3 << 20)


def test_modules_skip_the_monitor_area_and_the_top_of_low_memory() -> None:
    a, b = Module("a", "", b"a" * 10), Module("b", "", b"b" * 0x8000)
    placed = place_modules([a, b], 0x800, MEM, [(0x1000, 0x6000)])
    assert placed[0].start == 0x6000  # not over what the caller keeps out (the boot structures)
    assert placed[1].start == 0x7000
    placed = place_modules([a, b], INFO_AREA[1] - 0x1000, MEM)
    assert placed[0].start == INFO_AREA[1] - 0x1000
    assert placed[1].start == 0x100000  # would have run into the stack, EBDA and ROM window


def test_module_string_is_file_then_args() -> None:
    assert Module("/x/initrd", "a b", b"").string == "/x/initrd a b"
    assert Module("/x/initrd", "", b"").string == "/x/initrd"


def test_kernel_image_end_covers_bss() -> None:
    data = aout_kernel(bss=0x1000)
    h = parse_header(data)
    assert h is not None
    assert kernel_image(data, h, MEM).end == 0x100000 + len(data) + 0x1000


# --- a real kernel ------------------------------------------------------------------------------------
ASM_KERNEL = r"""
    .section .text
    .globl _start
    .align 4
mb_header:
    .long 0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)
_start:
    movl $stack_top, %esp
    movl %ebx, saved_info
    cli
1:  hlt
    jmp 1b
    .section .bss
    .align 16
saved_info: .long 0
stack: .skip 4096
stack_top:
"""


def test_gcc_built_multiboot_kernel(machine: FakeMachine, tmp_path: Path) -> None:
    exe = gcc_build(tmp_path, "mbk", ASM_KERNEL, ".S", "-m32")
    (tmp_path / "mod").write_bytes(b"module bytes")
    data = exe.read_bytes()
    k = load_kernel(machine, data, str(exe), cmdline="hello", modules=[(str(tmp_path / "mod"), "arg")])
    assert (k.format, k.entry, k.mode) == ("multiboot", 0x10000C, CpuMode.PROTECTED)
    assert machine.memory.read_u32(0x100000) == 0x1BADB002
    assert machine.boots[0].regs == {"rax": 0x2BADB002, "rbx": k.info_address}
    assert k.info_address is not None
    assert machine.cstring(machine.u32(k.info_address + 16)) == f"{exe} hello"
    mod_start = machine.u32(machine.u32(k.info_address + 24))
    assert mod_start % 4096 == 0 and mod_start > 0x100000
    assert machine.memory.read(mod_start, 12) == b"module bytes"
