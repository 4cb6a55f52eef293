"""CPU-mode set-up as pure functions: descriptor tables, the TSS, page tables and register state.

Nothing here touches KVM; `boot_state()` returns everything the monitor must write, so unit tests
check the exact bytes and register values without running a guest.
"""

from __future__ import annotations

import struct

from vmm import layout as L
from vmm.light_enum import LightEnum
from vmm.record import TupleRecord

# control-register and EFER bits
CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 1 << 1, 1 << 4, 1 << 5, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT = 1 << 4, 1 << 5, 1 << 9, 1 << 10
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11
RFLAGS_RESERVED = 1 << 1  # bit 1 always reads as one

# page-table entry bits
PTE_P, PTE_RW, PTE_US, PTE_PS = 1, 1 << 1, 1 << 2, 1 << 7

TSS_SIZE = 104
IO_BITMAP_BYTES = 65536 // 8
TSS_LIMIT = TSS_SIZE + IO_BITMAP_BYTES  # includes the 0xff byte that ends the bitmap


class CpuMode(LightEnum):
    REAL = "real"
    PROTECTED = "protected"
    LONG = "long"


class Segment(TupleRecord):
    """A segment register as KVM's `struct kvm_segment` holds it."""

    selector: int
    base: int = 0
    limit: int = 0xFFFFFFFF
    type: int = 0x3  # data read/write, accessed
    present: int = 1
    dpl: int = 0
    db: int = 0
    s: int = 1
    l: int = 0  # noqa: E741 (KVM's field name)
    g: int = 0


class BootState(TupleRecord):
    mode: CpuMode
    rip: int
    rsp: int
    rflags: int
    segments: dict[str, Segment]
    gdt: tuple[int, int]  # (base, limit)
    idt: tuple[int, int]
    cr0: int
    cr3: int
    cr4: int
    efer: int
    memory: list[tuple[int, bytes]]  # (gpa, bytes) the monitor writes


def gdt_descriptor(base: int, limit: int, access: int, flags: int) -> int:
    """An 8-byte code/data descriptor. `access` is the P/DPL/S/type byte, `flags` is G/DB/L/AVL."""
    return (
        (limit & 0xFFFF)
        | (base & 0xFFFFFF) << 16
        | (access & 0xFF) << 40
        | ((limit >> 16) & 0xF) << 48
        | (flags & 0xF) << 52
        | ((base >> 24) & 0xFF) << 56
    )


def tss_descriptor(base: int, limit: int, long_mode: bool) -> bytes:
    """A TSS descriptor: 16 bytes in long mode (base bits 63:32 in the second half), else 8."""
    low = gdt_descriptor(base, limit, 0x8B, 0)  # present, busy TSS: TR is loaded with it directly
    if long_mode:
        return struct.pack("<QQ", low, (base >> 32) & 0xFFFFFFFF)
    return struct.pack("<Q", low)


# access bytes: P=1, DPL, S=1, type; the accessed bit is preset so a read-only GDT still works
ACCESS_KERNEL_CODE, ACCESS_KERNEL_DATA = 0x9B, 0x93
ACCESS_USER_CODE, ACCESS_USER_DATA = 0xFB, 0xF3
FLAGS_CODE64, FLAGS_32 = 0xA, 0xC  # G + L ; G + D/B


# BootArea's layout: offsets from its base, and the bytes each mode's structures take
_GDT_OFFSET = 0
_IDT_OFFSET = L.BOOT_IDT - L.BOOT_GDT
_TSS_OFFSET = L.BOOT_TSS - L.BOOT_GDT
_PML4_OFFSET = L.BOOT_PML4 - L.BOOT_GDT
_PDPT_OFFSET = L.BOOT_PDPT - L.BOOT_GDT
_PD_OFFSET = L.BOOT_PD - L.BOOT_GDT
# the TSS, its bitmap and the bitmap's closing byte end inside the fifth page
_PROTECTED_SIZE = (_TSS_OFFSET + TSS_LIMIT + 1 + L.PAGE_SIZE - 1) & ~(L.PAGE_SIZE - 1)
_LONG_SIZE = L.MONITOR_AREA[1] - L.MONITOR_AREA[0]


class BootArea(TupleRecord):
    """Where the monitor's boot structures go, from a page-aligned `base`: the GDT, a page for the
    (empty) IDT, the TSS with its I/O bitmap (three pages), and in long mode the PML4, the PDPT and
    four page directories. The loaders choose `base` in a gap of the image (vmm.loaders.placement);
    the default is the layout in vmm.layout."""

    base: int = L.BOOT_GDT

    @property
    def gdt(self) -> int:
        return self.base + _GDT_OFFSET

    @property
    def idt(self) -> int:
        return self.base + _IDT_OFFSET

    @property
    def tss(self) -> int:
        return self.base + _TSS_OFFSET

    @property
    def pml4(self) -> int:
        return self.base + _PML4_OFFSET

    @property
    def pdpt(self) -> int:
        return self.base + _PDPT_OFFSET

    @property
    def pd(self) -> int:
        return self.base + _PD_OFFSET

    @staticmethod
    def size(mode: CpuMode) -> int:
        """Bytes the structures of `mode` take from `base` (real mode needs none)."""
        return {CpuMode.REAL: 0, CpuMode.PROTECTED: _PROTECTED_SIZE, CpuMode.LONG: _LONG_SIZE}[mode]


def boot_gdt(long_mode: bool, tss: int = L.BOOT_TSS) -> bytes:
    code_flags = FLAGS_CODE64 if long_mode else FLAGS_32
    entries = [
        0,
        gdt_descriptor(0, 0xFFFFF, ACCESS_KERNEL_CODE, code_flags),
        gdt_descriptor(0, 0xFFFFF, ACCESS_KERNEL_DATA, FLAGS_32),
        gdt_descriptor(0, 0xFFFFF, ACCESS_USER_CODE, code_flags),
        gdt_descriptor(0, 0xFFFFF, ACCESS_USER_DATA, FLAGS_32),
    ]
    return b"".join(struct.pack("<Q", e) for e in entries) + tss_descriptor(tss, TSS_LIMIT, long_mode)


def boot_tss(stack_top: int, long_mode: bool) -> bytes:
    """A TSS whose ring-0 stack is `stack_top` and whose I/O bitmap allows every port."""
    tss = bytearray(TSS_SIZE)
    if long_mode:
        struct.pack_into("<Q", tss, 4, stack_top)  # RSP0
    else:
        struct.pack_into("<IH", tss, 4, stack_top, L.SEL_KERNEL_DATA)  # ESP0, SS0
    struct.pack_into("<H", tss, 0x66, TSS_SIZE)  # I/O map base: right after the TSS
    return bytes(tss) + bytes(IO_BITMAP_BYTES) + b"\xff"


def identity_page_tables(gib: int = 4, area: BootArea | None = None) -> list[tuple[int, bytes]]:
    """PML4, PDPT and `gib` page directories identity-mapping [0, gib GiB) with 2 MiB pages.

    Every level has U/S set so code the guest drops to CPL 3 runs anywhere."""
    at = area if area is not None else BootArea()
    flags = PTE_P | PTE_RW | PTE_US
    pml4 = struct.pack("<Q", at.pdpt | flags).ljust(L.PAGE_SIZE, b"\0")
    pdpt = b"".join(struct.pack("<Q", (at.pd + i * L.PAGE_SIZE) | flags) for i in range(gib))
    out = [(at.pml4, pml4), (at.pdpt, pdpt.ljust(L.PAGE_SIZE, b"\0"))]
    for i in range(gib):
        pd = b"".join(struct.pack("<Q", ((i * 512 + j) << 21) | flags | PTE_PS) for j in range(512))
        out.append((at.pd + i * L.PAGE_SIZE, pd))
    return out


def _flat(selector: int, code: bool, long_mode: bool) -> Segment:
    dpl = selector & 3
    if code:
        return Segment(selector, type=0xB, dpl=dpl, db=0 if long_mode else 1, l=1 if long_mode else 0, g=1)
    return Segment(selector, type=0x3, dpl=dpl, db=1, g=1)


def boot_state(mode: CpuMode, entry: int, stack: int, area: BootArea | None = None) -> BootState:
    """The initial state of the boot vCPU for an image entered at `entry` with stack `stack`, its
    descriptor tables and page tables at `area` (the default layout when None)."""
    at = area if area is not None else BootArea()
    if mode is CpuMode.REAL:
        seg = Segment(0, base=0, limit=0xFFFF, type=0x3)
        segs = {n: seg for n in ("ds", "es", "fs", "gs", "ss")}
        # CS:IP reaches any entry below 1 MiB: the 64 KiB-aligned part goes into CS
        cs_base = entry & 0xF0000
        segs["cs"] = Segment(cs_base >> 4, base=cs_base, limit=0xFFFF, type=0xB)
        segs["tr"] = Segment(0, base=0, limit=0xFFFF, type=0xB, s=0)
        return BootState(
            mode,
            entry - cs_base,
            stack & 0xFFFF,
            RFLAGS_RESERVED,
            segs,
            (0, 0xFFFF),
            (0, 0x3FF),
            CR0_ET,
            0,
            0,
            0,
            [],
        )

    long_mode = mode is CpuMode.LONG
    data = _flat(L.SEL_KERNEL_DATA, False, long_mode)
    segs = {n: data for n in ("ds", "es", "fs", "gs", "ss")}
    segs["cs"] = _flat(L.SEL_KERNEL_CODE, True, long_mode)
    segs["tr"] = Segment(L.SEL_TSS, base=at.tss, limit=TSS_LIMIT, type=0xB, s=0)
    gdt = boot_gdt(long_mode, at.tss)
    memory = [(at.gdt, gdt), (at.tss, boot_tss(stack, long_mode))]
    cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE
    cr4 = CR4_OSFXSR | CR4_OSXMMEXCPT
    cr3 = efer = 0
    if long_mode:
        memory += identity_page_tables(area=at)
        cr0 |= CR0_WP | CR0_PG
        cr4 |= CR4_PAE
        cr3 = at.pml4
        efer = EFER_SCE | EFER_LME | EFER_LMA
    return BootState(
        mode,
        entry,
        stack,
        RFLAGS_RESERVED,
        segs,
        (at.gdt, len(gdt) - 1),
        (at.idt, 0),
        cr0,
        cr3,
        cr4,
        efer,
        memory,
    )
