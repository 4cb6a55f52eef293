"""Mode set-up is pure: check the state each mode produces without running a guest."""

from __future__ import annotations

import struct

import pytest

from vmm import layout as L
from vmm.cpu.modes import (
    CR0_PE,
    CR0_PG,
    CR4_PAE,
    EFER_LMA,
    EFER_LME,
    PTE_PS,
    PTE_US,
    TSS_LIMIT,
    CpuMode,
    boot_state,
    gdt_descriptor,
)
from vmm.cpu.paging import translate


def memory_of(state):  # type: ignore[no-untyped-def]
    mem = bytearray(0x20000)
    for gpa, data in state.memory:
        mem[gpa : gpa + len(data)] = data
    return mem


def test_gdt_descriptor_encodes_flat_64bit_code() -> None:
    # the well-known value of a flat 64-bit kernel code descriptor with the accessed bit set
    assert gdt_descriptor(0, 0xFFFFF, 0x9B, 0xA) == 0x00AF9B000000FFFF


def test_real_mode_starts_at_boot_sector_address() -> None:
    s = boot_state(CpuMode.REAL, 0x7C00, 0x7C00)
    assert (s.segments["cs"].selector, s.segments["cs"].base, s.rip) == (0, 0, 0x7C00)
    assert s.cr0 & CR0_PE == 0 and s.memory == []


def test_real_mode_entry_above_64k_goes_into_cs() -> None:
    s = boot_state(CpuMode.REAL, 0x12345, 0x10000)
    assert s.segments["cs"].selector == 0x1000 and s.segments["cs"].base == 0x10000 and s.rip == 0x2345


def test_protected_mode_flat_segments_no_paging() -> None:
    s = boot_state(CpuMode.PROTECTED, 0x100000, 0x100000)
    assert s.cr0 & CR0_PE and not s.cr0 & CR0_PG and s.efer == 0
    cs, ds = s.segments["cs"], s.segments["ds"]
    assert (cs.selector, cs.db, cs.l, cs.g, cs.limit) == (L.SEL_KERNEL_CODE, 1, 0, 1, 0xFFFFFFFF)
    assert (ds.selector, ds.type) == (L.SEL_KERNEL_DATA, 0x3)
    assert s.gdt == (L.BOOT_GDT, 6 * 8 - 1)


def test_long_mode_control_registers() -> None:
    s = boot_state(CpuMode.LONG, 0x100000, 0x100000)
    assert s.cr0 & (CR0_PE | CR0_PG) == CR0_PE | CR0_PG
    assert s.cr4 & CR4_PAE
    assert s.efer & (EFER_LME | EFER_LMA) == EFER_LME | EFER_LMA
    assert s.cr3 == L.BOOT_PML4
    cs = s.segments["cs"]
    assert (cs.l, cs.db) == (1, 0)
    assert s.gdt == (L.BOOT_GDT, 7 * 8 - 1)  # TSS descriptor is 16 bytes in long mode


@pytest.mark.parametrize("mode", [CpuMode.PROTECTED, CpuMode.LONG])
def test_gdt_entries_match_segments_and_have_accessed_bit(mode: CpuMode) -> None:
    s = boot_state(mode, 0x100000, 0x100000)
    mem = memory_of(s)
    for name in ("cs", "ds"):
        seg = s.segments[name]
        desc = struct.unpack_from("<Q", mem, L.BOOT_GDT + seg.selector)[0]
        access = (desc >> 40) & 0xFF
        assert access & 0x0F == seg.type  # includes the preset accessed bit
        assert (access >> 5) & 3 == seg.dpl
        assert (desc >> 53) & 1 == seg.l


def test_tss_allows_every_port_and_holds_ring0_stack() -> None:
    s = boot_state(CpuMode.LONG, 0x100000, 0x80000)
    mem = memory_of(s)
    assert struct.unpack_from("<Q", mem, L.BOOT_TSS + 4)[0] == 0x80000
    iomap = struct.unpack_from("<H", mem, L.BOOT_TSS + 0x66)[0]
    bitmap = mem[L.BOOT_TSS + iomap : L.BOOT_TSS + iomap + 8192]
    assert bitmap == bytes(8192) and mem[L.BOOT_TSS + iomap + 8192] == 0xFF
    assert iomap + 8192 == TSS_LIMIT
    tr = s.segments["tr"]
    assert (tr.base, tr.limit, tr.s) == (L.BOOT_TSS, TSS_LIMIT, 0)


def test_boot_structures_stay_inside_monitor_area() -> None:
    s = boot_state(CpuMode.LONG, 0x100000, 0x100000)
    lo, hi = L.MONITOR_AREA
    for gpa, data in s.memory:
        assert lo <= gpa and gpa + len(data) <= hi


@pytest.mark.parametrize("gva", [0, 0x1000, 0x100000, 0x1FFFFF, 0x200000, 0xD0000000, 0xFFFFFFFF])
def test_long_mode_page_tables_identity_map_4gib_user_accessible(gva: int) -> None:
    s = boot_state(CpuMode.LONG, 0x100000, 0x100000)
    mem = memory_of(s)

    def read_u64(gpa: int) -> int:
        return int(struct.unpack_from("<Q", mem, gpa)[0])

    assert translate(gva, s.cr0, s.cr3, s.cr4, s.efer, read_u64) == gva
    pde = read_u64(L.BOOT_PD + (gva >> 21) * 8)
    assert pde & PTE_PS and pde & PTE_US


def test_above_4gib_is_unmapped() -> None:
    s = boot_state(CpuMode.LONG, 0x100000, 0x100000)
    mem = memory_of(s)
    assert translate(1 << 32, s.cr0, s.cr3, s.cr4, s.efer, lambda a: int(struct.unpack_from("<Q", mem, a)[0])) is None
