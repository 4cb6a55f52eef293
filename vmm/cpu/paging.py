"""Guest-virtual to guest-physical translation by walking the guest's page tables (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmm.cpu.modes import CR0_PE, CR0_PG, CR4_PAE, CR4_PSE, EFER_LMA, PTE_P, PTE_PS

ADDR_MASK = 0x000FFFFFFFFFF000


@dataclass(frozen=True)
class WalkStep:
    level: str
    table: int  # guest-physical address of the table
    index: int
    entry: int


@dataclass(frozen=True)
class Walk:
    gva: int
    gpa: int | None  # None: not mapped
    steps: list[WalkStep]


def walk(gva: int, cr0: int, cr3: int, cr4: int, efer: int, read_u64: Callable[[int], int]) -> Walk:
    """Walk the tables the guest's control registers select. `read_u64` reads guest-physical RAM;
    a table outside RAM (read_u64 raising) ends the walk as unmapped."""
    if not (cr0 & CR0_PE and cr0 & CR0_PG):
        return Walk(gva, gva, [])
    steps: list[WalkStep] = []

    def step(level: str, table: int, index: int, width: int) -> int:
        addr = table + index * width
        raw = read_u64(addr)
        entry = raw if width == 8 else raw & 0xFFFFFFFF
        steps.append(WalkStep(level, table, index, entry))
        return entry

    try:
        if efer & EFER_LMA:
            levels = (("PML4", 39), ("PDPT", 30), ("PD", 21), ("PT", 12))
            table = cr3 & ADDR_MASK
            for name, shift in levels:
                e = step(name, table, (gva >> shift) & 0x1FF, 8)
                if not e & PTE_P:
                    return Walk(gva, None, steps)
                if name in ("PDPT", "PD") and e & PTE_PS:
                    size = 1 << shift
                    return Walk(gva, (e & ADDR_MASK & ~(size - 1)) | (gva & (size - 1)), steps)
                table = e & ADDR_MASK
            return Walk(gva, table | (gva & 0xFFF), steps)
        gva &= 0xFFFFFFFF
        if cr4 & CR4_PAE:
            e = step("PDPT", cr3 & 0xFFFFFFE0, (gva >> 30) & 3, 8)
            if not e & PTE_P:
                return Walk(gva, None, steps)
            e = step("PD", e & ADDR_MASK, (gva >> 21) & 0x1FF, 8)
            if not e & PTE_P:
                return Walk(gva, None, steps)
            if e & PTE_PS:
                return Walk(gva, (e & ADDR_MASK & ~0x1FFFFF) | (gva & 0x1FFFFF), steps)
            e = step("PT", e & ADDR_MASK, (gva >> 12) & 0x1FF, 8)
            return Walk(gva, (e & ADDR_MASK) | (gva & 0xFFF) if e & PTE_P else None, steps)
        e = step("PD", cr3 & 0xFFFFF000, (gva >> 22) & 0x3FF, 4)
        if not e & PTE_P:
            return Walk(gva, None, steps)
        if e & PTE_PS and cr4 & CR4_PSE:
            return Walk(gva, (e & 0xFFC00000) | (gva & 0x3FFFFF), steps)
        e = step("PT", e & 0xFFFFF000, (gva >> 12) & 0x3FF, 4)
        return Walk(gva, (e & 0xFFFFF000) | (gva & 0xFFF) if e & PTE_P else None, steps)
    except Exception:  # a table outside RAM: the hardware would fault, so the address is unmapped
        return Walk(gva, None, steps)


def translate(gva: int, cr0: int, cr3: int, cr4: int, efer: int, read_u64: Callable[[int], int]) -> int | None:
    return walk(gva, cr0, cr3, cr4, efer, read_u64).gpa
