"""Guest-virtual translation for each paging form, on hand-built tables."""

from __future__ import annotations

import struct

from vmm.cpu.modes import CR0_PE, CR0_PG, CR4_PAE, CR4_PSE, EFER_LMA, PTE_P, PTE_PS, PTE_RW
from vmm.cpu.paging import translate, walk


class Ram:
    def __init__(self) -> None:
        self.b = bytearray(0x10000)

    def put(self, gpa: int, value: int, width: int = 8) -> None:
        struct.pack_into("<Q" if width == 8 else "<I", self.b, gpa, value)

    def read_u64(self, gpa: int) -> int:
        if gpa + 8 > len(self.b):
            raise IndexError(gpa)
        return int(struct.unpack_from("<Q", self.b, gpa)[0])


def test_paging_off_is_identity() -> None:
    assert translate(0x1234, CR0_PE, 0, 0, 0, Ram().read_u64) == 0x1234


def test_four_level_4k_page() -> None:
    r = Ram()
    r.put(0x1000, 0x2000 | PTE_P | PTE_RW)  # PML4[0]
    r.put(0x2000, 0x3000 | PTE_P)  # PDPT[0]
    r.put(0x3000 + 8 * 1, 0x4000 | PTE_P)  # PD[1]
    r.put(0x4000 + 8 * 5, 0xABC000 | PTE_P)  # PT[5]
    gva = (1 << 21) | (5 << 12) | 0x123
    w = walk(gva, CR0_PE | CR0_PG, 0x1000, CR4_PAE, EFER_LMA, r.read_u64)
    assert w.gpa == 0xABC123
    assert [s.level for s in w.steps] == ["PML4", "PDPT", "PD", "PT"]


def test_not_present_entry_is_unmapped() -> None:
    r = Ram()
    r.put(0x1000, 0x2000)  # PML4[0] not present
    assert translate(0x5000, CR0_PE | CR0_PG, 0x1000, CR4_PAE, EFER_LMA, r.read_u64) is None


def test_table_outside_ram_is_unmapped() -> None:
    r = Ram()
    r.put(0x1000, 0x7FFF0000 | PTE_P)
    assert translate(0x5000, CR0_PE | CR0_PG, 0x1000, CR4_PAE, EFER_LMA, r.read_u64) is None


def test_32bit_4m_page_with_pse() -> None:
    r = Ram()
    r.put(0x1000 + 4 * 3, 0x00C00000 | PTE_P | PTE_PS, width=4)
    gva = (3 << 22) | 0x12345
    assert translate(gva, CR0_PE | CR0_PG, 0x1000, CR4_PSE, 0, r.read_u64) == 0x00C12345


def test_pae_2m_page() -> None:
    r = Ram()
    r.put(0x1000 + 8 * 1, 0x2000 | PTE_P)  # PDPT[1]
    r.put(0x2000 + 8 * 2, 0x40000000 | PTE_P | PTE_PS)
    gva = (1 << 30) | (2 << 21) | 0x777
    assert translate(gva, CR0_PE | CR0_PG, 0x1000, CR4_PAE, 0, r.read_u64) == 0x40000777
