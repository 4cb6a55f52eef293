"""The cache leaves QEMU 7.2 gives a vCPU (it never passes the host's through unless asked to with
`host-cache-info`, which pyvmm does not offer): leaf 2 (descriptors), leaf 4 and 0x8000001D
(deterministic cache parameters), 0x80000005 and 0x80000006 (AMD's L1/L2/L3 and TLB words).

- `-cpu host`, `max` and the named Intel and older AMD models: QEMU's "legacy" caches, which are
  not one cache hierarchy but three: leaf 4 describes 32 KiB L1s, a 4 MiB L2 and a 16 MiB L3; leaf 2
  names a 2 MiB L2; the AMD leaves describe 64 KiB 2-way L1s and a 512 KiB L2 (and the same L3).
- the EPYC models: their own hierarchy, the same in every leaf.
- On an AMD vendor leaves 2 and 4 are zero (QEMU's x-vendor-cpuid-only, on for 7.2 machines).

The topology fields (leaf 4 EAX 31:26 and 25:14, 0x8000001D EAX 25:14) depend on -smp and are
filled per vCPU by `topology_fields`. Pure functions over `Leaf` tables.
"""

from __future__ import annotations

from vmm.record import TupleRecord

DATA, INSTRUCTION, UNIFIED = 1, 2, 3
KiB, MiB = 1 << 10, 1 << 20


# Tuple records rather than dataclasses: these are built while pyvmm starts (see vmm.record and
# tests/unit/test_startup_imports.py)
class Cache(TupleRecord):
    level: int
    kind: int  # DATA, INSTRUCTION or UNIFIED (the CPUID cache type)
    size: int
    ways: int
    self_init: bool = True
    no_invd_sharing: bool = False  # EDX bit 0: WBINVD/INVD do not act on lower levels' sharers
    inclusive: bool = False
    complex_indexing: bool = False
    line: int = 64

    @property
    def sets(self) -> int:
        return self.size // (self.ways * self.line)


class Hierarchy(TupleRecord):
    l1d: Cache
    l1i: Cache
    l2: Cache
    l3: Cache

    def caches(self) -> tuple[Cache, Cache, Cache, Cache]:
        return self.l1d, self.l1i, self.l2, self.l3


def _l1(kind: int, size: int, ways: int) -> Cache:
    return Cache(1, kind, size, ways, no_invd_sharing=True)


def _l3(size: int) -> Cache:
    return Cache(3, UNIFIED, size, 16, inclusive=True, complex_indexing=True)


class CacheModel(TupleRecord):
    """What one model tells in each group of leaves."""

    cpuid2: Hierarchy  # leaf 2
    cpuid4: Hierarchy  # leaf 4
    amd: Hierarchy  # 0x80000005, 0x80000006, 0x8000001D


_LEGACY_4 = Hierarchy(_l1(DATA, 32 * KiB, 8), _l1(INSTRUCTION, 32 * KiB, 8),
                      Cache(2, UNIFIED, 4 * MiB, 16, no_invd_sharing=True), _l3(16 * MiB))  # fmt: skip
_LEGACY_2 = Hierarchy(_LEGACY_4.l1d, _LEGACY_4.l1i, Cache(2, UNIFIED, 2 * MiB, 8), _LEGACY_4.l3)
_LEGACY_AMD = Hierarchy(_l1(DATA, 64 * KiB, 2), _l1(INSTRUCTION, 64 * KiB, 2),
                        Cache(2, UNIFIED, 512 * KiB, 16, self_init=False), _LEGACY_4.l3)  # fmt: skip


def _epyc(l1i: Cache, l3_size: int) -> CacheModel:
    h = Hierarchy(_l1(DATA, 32 * KiB, 8), l1i, Cache(2, UNIFIED, 512 * KiB, 8, self_init=False), _l3(l3_size))
    return CacheModel(h, h, h)


CACHE_MODELS: dict[str, CacheModel] = {
    "legacy": CacheModel(_LEGACY_2, _LEGACY_4, _LEGACY_AMD),
    "epyc": _epyc(_l1(INSTRUCTION, 64 * KiB, 4), 8 * MiB),
    "epyc-rome": _epyc(_l1(INSTRUCTION, 32 * KiB, 8), 16 * MiB),
    "epyc-milan": _epyc(_l1(INSTRUCTION, 32 * KiB, 8), 32 * MiB),
}

# Leaf 2 descriptor bytes (Intel SDM vol. 2A, table 3-12) for the caches above; 0xFF where the SDM
# has none ("no cache information in leaf 2, use leaf 4"), as QEMU answers
_DESCRIPTORS = {
    (1, DATA, 32 * KiB, 8): 0x2C,
    (1, INSTRUCTION, 32 * KiB, 8): 0x30,
    (2, UNIFIED, 2 * MiB, 8): 0x7D,
    (2, UNIFIED, 512 * KiB, 8): 0x80,
    (3, UNIFIED, 8 * MiB, 16): 0x4B,
    (3, UNIFIED, 16 * MiB, 16): 0x4D,
}
NO_DESCRIPTOR = 0xFF

# The TLB words QEMU puts in 0x80000005 EAX/EBX and 0x80000006 EAX/EBX for every model
L1_TLBS = 0x01FF01FF
L2_TLBS_2M, L2_TLBS_4K = 0x00000000, 0x42004200
# AMD's associativity encoding for 0x80000006 (ways -> 4-bit field)
_AMD_WAYS = {1: 1, 2: 2, 4: 4, 8: 6, 16: 8, 32: 0xA, 48: 0xB, 64: 0xC, 96: 0xD, 128: 0xE}

Regs = tuple[int, int, int, int]


def _descriptor(c: Cache) -> int:
    return _DESCRIPTORS.get((c.level, c.kind, c.size, c.ways), NO_DESCRIPTOR)


def leaf2(h: Hierarchy) -> Regs:
    """One call (AL = 1); L3 in ECX, L1d, L1i and L2 in EDX bytes 2, 1, 0."""
    return 1, 0, _descriptor(h.l3), _descriptor(h.l1d) << 16 | _descriptor(h.l1i) << 8 | _descriptor(h.l2)


def deterministic(c: Cache) -> Regs:
    """Leaf 4 / 0x8000001D for one cache, with the topology fields zero."""
    eax = c.kind | c.level << 5 | (1 << 8 if c.self_init else 0)
    ebx = (c.line - 1) | (c.ways - 1) << 22  # one partition
    edx = (1 if c.no_invd_sharing else 0) | (2 if c.inclusive else 0) | (4 if c.complex_indexing else 0)
    return eax, ebx, c.sets - 1, edx


def _amd_l1(c: Cache) -> int:
    return (c.size // KiB) << 24 | c.ways << 16 | 1 << 8 | c.line  # one line per tag


def amd_80000005(h: Hierarchy) -> Regs:
    return L1_TLBS, L1_TLBS, _amd_l1(h.l1d), _amd_l1(h.l1i)


def amd_80000006(h: Hierarchy) -> Regs:
    l2, l3 = h.l2, h.l3
    ecx = (l2.size // KiB) << 16 | _AMD_WAYS[l2.ways] << 12 | 1 << 8 | l2.line
    edx = (l3.size // (512 * KiB)) << 18 | _AMD_WAYS[l3.ways] << 12 | 1 << 8 | l3.line
    return L2_TLBS_2M, L2_TLBS_4K, ecx, edx


def topology_fields(function: int, eax: int, ncpus: int) -> int:
    """`eax` of a leaf 4 or 0x8000001D subleaf with QEMU's sharing counts for -smp `ncpus` (one
    thread per core, `ncpus` cores on one die): L1 and L2 belong to one thread; L3 is shared by
    the die, counted in leaf 4 as the APIC ids the die spans."""
    if eax & 0x1F == 0:  # no cache: the terminating subleaf
        return eax
    level = eax >> 5 & 7
    eax &= 0x3FFF
    if function == 4:
        if level == 3:
            eax |= ((1 << (ncpus - 1).bit_length()) - 1) << 14
        return eax | (ncpus - 1) << 26
    return eax | ((ncpus - 1) << 14 if level == 3 else 0)
