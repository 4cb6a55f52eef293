"""ELF loading: segments at their physical addresses, the BSS zeroed, the entry and CPU mode, and
one check per refusal with its message. Real executables from gcc where it can build them."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_loader_images import (
    EM_386,
    EM_X86_64,
    PT_NOTE,
    FakeMachine,
    Seg,
    ehdr_size,
    elf,
    fake_machine,
    gcc_build,
    phent_size,
)
from vmm.cpu.modes import CpuMode
from vmm.errors import ConfigError, ImageError
from vmm.loaders import load_kernel
from vmm.loaders.elf import parse_elf, resolve_entry

MEM = 16 << 20


@pytest.fixture
def machine() -> Iterator[FakeMachine]:
    yield from fake_machine(MEM)


# --- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("bits", "machine_nr"), [(32, EM_386), (64, EM_X86_64)])
def test_parse_reports_class_machine_entry_and_load_segments(bits: int, machine_nr: int) -> None:
    data = elf(
        bits,
        [Seg(0x100000, b"code"), Seg(0, b"note", p_type=PT_NOTE), Seg(0x200000, b"dat", memsz=0x100)],
        entry=0x100002,
    )
    img = parse_elf(data)
    assert (img.elf_class, img.machine, img.entry) == (bits, machine_nr, 0x100002)
    assert [(s.paddr, s.data, s.memsz) for s in img.segments] == [(0x100000, b"code", 4), (0x200000, b"dat", 0x100)]
    assert [s.name for s in img.segments] == ["segment 0", "segment 2"]  # numbered as in the table


def test_parse_uses_physical_not_virtual_addresses() -> None:
    img = parse_elf(elf(64, [Seg(0x200000, b"x", vaddr=0xFFFFFFFF80200000)]))
    assert img.segments[0].paddr == 0x200000
    assert img.segments[0].vaddr == 0xFFFFFFFF80200000


def test_empty_load_segment_is_skipped() -> None:
    img = parse_elf(elf(32, [Seg(0x5000, b"", memsz=0), Seg(0x100000, b"x")]))
    assert [s.paddr for s in img.segments] == [0x100000]


def test_shared_object_type_is_accepted() -> None:
    assert parse_elf(elf(64, [Seg(0x100000, b"x")], e_type=3)).entry == 0x100000


# --- refusals, one line each ---------------------------------------------------------------------
def refuse(data: bytes, pattern: str, mem_size: int | None = None) -> str:
    with pytest.raises(ImageError, match=pattern) as e:
        parse_elf(data, mem_size)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_not_elf() -> None:
    refuse(b"MZ" + bytes(100), r"^not an ELF file")


@pytest.mark.parametrize(("bits", "need"), [(32, 52), (64, 64)])
def test_truncated_header(bits: int, need: int) -> None:
    data = elf(bits, [Seg(0x100000, b"x")])[:40]
    refuse(data, rf"^truncated ELF header: the file has 40 bytes, a {bits}-bit header needs {need}$")


def test_big_endian() -> None:
    data = bytearray(elf(32, [Seg(0x100000, b"x")]))
    data[5] = 2
    refuse(bytes(data), r"^ELF data encoding 2 is not little-endian")


def test_relocatable_object() -> None:
    refuse(elf(64, [Seg(0x100000, b"x")], e_type=1), r"^ELF type 1 is not an executable")


@pytest.mark.parametrize("machine_nr", [40, 183, 0])  # ARM, AArch64, none
def test_unsupported_machine(machine_nr: int) -> None:
    refuse(elf(32, [Seg(0x100000, b"x")], machine=machine_nr), rf"^unsupported ELF machine {machine_nr}: only x86")


@pytest.mark.parametrize("bits", [32, 64])
def test_program_header_table_past_end_of_file(bits: int) -> None:
    data = elf(bits, [Seg(0x100000, b"x")])
    cut = data[: ehdr_size(bits) + phent_size(bits) - 1]
    msg = refuse(cut, r"^bad program-header table: 1 entries of \d+ bytes at offset ")
    assert f"past the end of the file ({len(cut):#x} bytes)" in msg


def test_program_header_entry_size_too_small() -> None:
    data = bytearray(elf(64, [Seg(0x100000, b"x")]))
    struct.pack_into("<H", data, 54, 32)  # e_phentsize
    refuse(bytes(data), r"^bad program-header table: entries of 32 bytes, at least 56 needed$")


def test_program_header_extended_numbering() -> None:
    data = bytearray(elf(32, [Seg(0x100000, b"x")]))
    struct.pack_into("<H", data, 44, 0xFFFF)  # e_phnum
    refuse(bytes(data), r"^bad program-header table: extended numbering")


@pytest.mark.parametrize("bits", [32, 64])
def test_segment_file_range_outside_file(bits: int) -> None:
    data = elf(bits, [Seg(0x100000, b"abcd")])
    cut = data[:-2]
    start, end = len(cut) - 2, len(cut) + 2
    refuse(cut, rf"^segment 0: file bytes {start:#x}-{end:#x} lie outside the file \({len(cut):#x} bytes\)$")


def test_filesz_larger_than_memsz() -> None:
    refuse(elf(64, [Seg(0x100000, b"abcd", memsz=2)]), r"^segment 0: file size 0x4 is larger than its memory size 0x2$")


def test_no_load_segment() -> None:
    refuse(elf(64, [Seg(0x100000, b"x", p_type=PT_NOTE)]), r"^no PT_LOAD segment")
    refuse(elf(32, []), r"^no PT_LOAD segment")


def test_overlapping_segments_names_both() -> None:
    data = elf(32, [Seg(0x100000, b"a" * 0x10, memsz=0x1000), Seg(0x300000, b"c"), Seg(0x100800, b"b" * 0x10)])
    refuse(data, r"^segment 0 \(0x100000-0x101000\) and segment 2 \(0x100800-0x100810\) overlap$")


def test_segment_outside_ram() -> None:
    data = elf(64, [Seg(0x100000, b"x"), Seg(0xFFF000, b"y", memsz=0x2000)])
    refuse(
        data,
        r"^segment 1 at 0xfff000-0x1001000 lies outside guest RAM \(0x1000000 bytes\); use a larger --mem$",
        mem_size=MEM,
    )


@pytest.mark.parametrize(("paddr", "size"), [(0x1000, 1), (0xBFFF, 1), (0x0, 0x1001), (0x8000, 0x100)])
def test_segments_in_low_memory_are_accepted(paddr: int, size: int) -> None:
    # the monitor's boot structures go around them (tests/unit/test_boot_placement.py)
    img = parse_elf(elf(32, [Seg(paddr, b"x" * size)]), MEM)
    assert [(s.paddr, s.end) for s in img.segments] == [(paddr, paddr + size)]


# --- entry points ----------------------------------------------------------------------------------
def test_entry_inside_a_segment_is_used_as_is() -> None:
    img = parse_elf(elf(64, [Seg(0x100000, b"x" * 0x100, vaddr=0xFFFF800000100000)], entry=0x100080))
    assert resolve_entry(img.entry, img.segments) == 0x100080


def test_virtual_entry_is_moved_to_its_physical_address() -> None:
    img = parse_elf(elf(32, [Seg(0x100000, b"x" * 0x100, vaddr=0xC0100000)], entry=0xC0100040))
    assert resolve_entry(img.entry, img.segments) == 0x100040


def test_entry_outside_every_segment_is_refused() -> None:
    img = parse_elf(elf(32, [Seg(0x100000, b"x" * 0x100)], entry=0x400000))
    with pytest.raises(ImageError, match=r"^entry point 0x400000 is not inside any loaded segment$"):
        resolve_entry(img.entry, img.segments)


# --- load_kernel -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("bits", "mode", "fmt"), [(32, CpuMode.PROTECTED, "elf32"), (64, CpuMode.LONG, "elf64")])
def test_load_places_segments_zeroes_bss_and_boots(machine: FakeMachine, bits: int, mode: CpuMode, fmt: str) -> None:
    machine.memory.fill(0x200000, 0x104, 0xAA)  # the BSS must be zeroed, not assumed zero
    data = elf(bits, [Seg(0x100000, b"\xf4\xeb\xfd"), Seg(0x200000, b"DATA", memsz=0x100)], entry=0x100001)
    k = load_kernel(machine, data, "k.elf")
    assert (k.format, k.entry, k.mode, k.info_address) == (fmt, 0x100001, mode, None)
    assert machine.memory.read(0x100000, 3) == b"\xf4\xeb\xfd"
    assert machine.memory.read(0x200000, 0x100) == b"DATA" + bytes(0xFC)
    assert machine.memory.read(0x200100, 4) == b"\xaa" * 4  # nothing past memsz is touched
    assert len(machine.boots) == 1
    boot = machine.boots[0]
    assert (boot.mode, boot.entry, boot.regs) == (mode, 0x100001, None)


def test_load_refusal_names_the_image_and_writes_nothing(machine: FakeMachine) -> None:
    data = elf(64, [Seg(0x100000, b"x"), Seg(0x2000000, b"y")])
    with pytest.raises(ImageError, match=r"^image 'big\.elf': segment 1 at 0x2000000-0x2000001 lies outside guest RAM"):
        load_kernel(machine, data, "big.elf")
    assert machine.memory.read(0x100000, 1) == b"\0"
    assert machine.boots == []


def test_load_refuses_flat_options(machine: FakeMachine) -> None:
    data = elf(64, [Seg(0x100000, b"x")])
    with pytest.raises(ConfigError, match=r"^--load applies only to flat binaries: 'k' is a 64-bit ELF image"):
        load_kernel(machine, data, "k", load=0x200000)
    with pytest.raises(ConfigError, match=r"^--entry applies only to flat binaries"):
        load_kernel(machine, data, "k", entry=0x100000)
    with pytest.raises(
        ConfigError, match=r"^--mode protected does not apply: 'k' is a 64-bit ELF image, .* long mode$"
    ):
        load_kernel(machine, data, "k", mode=CpuMode.PROTECTED)
    assert machine.boots == []
    load_kernel(machine, data, "k", mode=CpuMode.LONG)  # agreeing with the image is fine
    assert machine.boots[0].mode is CpuMode.LONG


def test_load_refuses_cmdline_and_modules_for_plain_elf(machine: FakeMachine) -> None:
    data = elf(32, [Seg(0x100000, b"x")])
    with pytest.raises(ConfigError, match=r"^--append needs a multiboot kernel: 'k' is a 32-bit ELF image"):
        load_kernel(machine, data, "k", cmdline="quiet")
    with pytest.raises(ConfigError, match=r"^--initrd needs a multiboot kernel"):
        load_kernel(machine, data, "k", modules=[("m", "")])


def test_flat_binary_goes_through_place_flat(machine: FakeMachine) -> None:
    k = load_kernel(machine, b"\xf4" * 16, "flat.bin")
    assert (k.format, k.entry, k.mode, k.info_address) == ("flat", 0x100000, CpuMode.LONG, None)
    assert machine.memory.read(0x100000, 16) == b"\xf4" * 16
    assert machine.boots[0].stack == 0x100000
    k = load_kernel(machine, b"\xf4" * 16, "flat.bin", mode=CpuMode.REAL)
    assert (k.entry, k.mode, machine.boots[1].stack) == (0x7C00, CpuMode.REAL, 0x7C00)
    k = load_kernel(machine, b"\xf4" * 16, "flat.bin", mode=CpuMode.PROTECTED, load=0x300000, entry=0x300008)
    assert (k.entry, machine.memory.read(0x300000, 1)) == (0x300008, b"\xf4")


def test_flat_binary_refusals_come_from_place_flat(machine: FakeMachine) -> None:
    with pytest.raises(ImageError, match="no room for the monitor's boot structures"):
        load_kernel(machine, b"\xf4" * 0x95000, "flat.bin", load=0x1000)
    with pytest.raises(ConfigError, match=r"^--append needs a multiboot kernel: 'flat\.bin' is a flat binary"):
        load_kernel(machine, b"\xf4", "flat.bin", cmdline="x")


# --- real executables ----------------------------------------------------------------------------
C_KERNEL = """
int counter = 7;
int zeroes[64];
void _start(void) { zeroes[1] = counter; for (;;) __asm__ volatile("hlt"); }
"""


@pytest.mark.parametrize(("bits", "mode"), [(32, CpuMode.PROTECTED), (64, CpuMode.LONG)])
def test_gcc_built_kernel(machine: FakeMachine, tmp_path: Path, bits: int, mode: CpuMode) -> None:
    exe = gcc_build(tmp_path, f"k{bits}", C_KERNEL, ".c", f"-m{bits}", "-O1")
    data = exe.read_bytes()
    img = parse_elf(data, MEM)
    assert img.elf_class == bits
    assert img.entry == 0x100000  # -Ttext puts _start, the only function, first
    text = next(s for s in img.segments if s.paddr == 0x100000)
    bss = next(s for s in img.segments if s.memsz > len(s.data))  # .data followed by .bss
    machine.memory.fill(bss.paddr, bss.memsz, 0xCC)
    k = load_kernel(machine, data, str(exe))
    assert (k.format, k.entry, k.mode) == (f"elf{bits}", 0x100000, mode)
    assert machine.memory.read(0x100000, len(text.data)) == text.data
    tail = bss.memsz - len(bss.data)
    assert machine.memory.read(bss.paddr + len(bss.data), tail) == bytes(tail)
    assert machine.memory.read_u32(bss.paddr) == 7  # `counter` starts .data
