"""Where the monitor's boot structures, the multiboot information and the modules go: in the gaps
the image leaves, never over a segment, never in page 0, the same way every time."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import GUESTS
from test_loader_images import FakeMachine, fake_machine

from vmm.cpu.modes import BootArea, CpuMode, boot_state
from vmm.errors import ImageError
from vmm.loaders import load_kernel
from vmm.loaders.elf import parse_elf
from vmm.loaders.placement import LOW_WINDOW, Occupied, choose_boot_area, find_gap

MEM = 128 << 20
MB_LOW = [Occupied(0x8000, 0xA86C, "segment 0"), Occupied(0xB000, 0xDA30, "segment 1")]


@pytest.fixture
def machine() -> Iterator[FakeMachine]:
    yield from fake_machine(MEM)


def test_default_place_for_a_kernel_at_1_mib() -> None:
    high = [Occupied(0x100000, 0x180000, "segment 0")]
    assert choose_boot_area(CpuMode.PROTECTED, high, MEM).base == 0x1000
    assert choose_boot_area(CpuMode.LONG, high, MEM).base == 0x1000


def test_sizes_per_mode() -> None:
    assert BootArea.size(CpuMode.PROTECTED) == 0x5000  # GDT, IDT page, TSS + I/O bitmap
    assert BootArea.size(CpuMode.LONG) == 0xB000  # and PML4, PDPT, four page directories


def test_structures_fit_the_gap_below_or_after_a_low_kernel() -> None:
    assert choose_boot_area(CpuMode.PROTECTED, MB_LOW, MEM).base == 0x1000  # 0x1000-0x6000, below 0x8000
    assert choose_boot_area(CpuMode.LONG, MB_LOW, MEM).base == 0xE000  # 0xb000 bytes fit only above


def test_never_page_0() -> None:
    assert find_gap(0x1000, []) == LOW_WINDOW[0] == 0x1000
    assert choose_boot_area(CpuMode.PROTECTED, [Occupied(0x1000, 0x1800, "s")], MEM).base == 0x2000


@pytest.mark.parametrize("mode", [CpuMode.PROTECTED, CpuMode.LONG])
def test_written_state_lies_inside_the_chosen_area(mode: CpuMode) -> None:
    area = choose_boot_area(mode, MB_LOW, MEM)
    state = boot_state(mode, 0x8000, 0x9F000, area)
    end = area.base + BootArea.size(mode)
    for gpa, data in state.memory:
        assert area.base <= gpa and gpa + len(data) <= end
        assert all(gpa + len(data) <= o.start or o.end <= gpa for o in MB_LOW)
    assert state.gdt[0] == area.gdt and state.segments["tr"].base == area.tss
    if mode is CpuMode.LONG:
        assert state.cr3 == area.pml4


def test_an_image_that_leaves_no_room_is_one_line_naming_what_collided() -> None:
    full = [Occupied(0x1000, 0x50000, "segment 0 (0x1000-0x50000)"), Occupied(0x52000, 0x99000, "segment 1 (x)")]
    with pytest.raises(ImageError) as e:
        choose_boot_area(CpuMode.PROTECTED, full, MEM)
    message = str(e.value)
    assert "\n" not in message
    assert re.fullmatch(
        r"no room for the monitor's boot structures \(0x5000 bytes for protected mode\) in low memory "
        r"0x1000-0x9b000: it is covered by segment 0 \(0x1000-0x50000\), segment 1 \(x\)",
        message,
    )


def test_mb_low_loads_with_everything_in_the_gaps(machine: FakeMachine) -> None:
    image = GUESTS / "mb" / "mb-low.elf"
    if not image.exists():
        pytest.fail(f"{image} is missing: run `make guests`")
    data = image.read_bytes()
    module = GUESTS / "mb" / "mb-low.map"  # any file will do as a module
    k = load_kernel(machine, data, "mb-low.elf", cmdline="low test", modules=[(str(module), "m")])
    segments = [(s.paddr, s.end) for s in parse_elf(data).segments]
    assert segments == [(0x8000, 0xA86C), (0xB000, 0xDA30)]
    boot = machine.boots[-1]
    assert boot.area is not None and boot.area.base == 0x1000
    area = (boot.area.base, boot.area.base + BootArea.size(CpuMode.PROTECTED))
    info = k.info_address
    assert info is not None
    mods_addr = machine.u32(info + 24)
    mod_start, mod_end = machine.u32(mods_addr), machine.u32(mods_addr + 4)
    taken = [*segments, area]
    for lo, hi in [(info, info + 88), (mod_start, mod_end)]:
        assert lo >= 0x1000  # never page 0
        assert all(hi <= a or b <= lo for a, b in taken), (hex(lo), hex(hi))
        taken.append((lo, hi))
    # the same inputs give the same places
    again = load_kernel(machine, data, "mb-low.elf", cmdline="low test", modules=[(str(module), "m")])
    assert again.info_address == info and machine.boots[-1].area == boot.area
