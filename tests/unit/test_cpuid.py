"""Each vCPU's CPUID carries its own APIC id, leaving every other value as KVM supplied it."""

from __future__ import annotations

from kvm_abi import ffi
from vmm.cpu.cpuid import cpuid_for_vcpu


def supported() -> object:
    leaves = [(0, 0x16, 0x756E6547), (1, 0x000306A9, 0x00100800), (0xB, 0, 0x00000001), (0x80000000, 0x80000008, 0)]
    c = ffi.new("struct kvm_cpuid2 *", {"nent": len(leaves), "entries": len(leaves)})
    c.nent = len(leaves)
    for i, (fn, eax, ebx) in enumerate(leaves):
        c.entries[i].function, c.entries[i].eax, c.entries[i].ebx, c.entries[i].edx = fn, eax, ebx, 0
    return c


def test_apic_id_goes_into_leaf_1_and_the_x2apic_leaves() -> None:
    base = supported()
    c = cpuid_for_vcpu(base, 5)
    by_fn = {c.entries[i].function: c.entries[i] for i in range(c.nent)}
    assert by_fn[1].ebx >> 24 == 5 and by_fn[1].ebx & 0xFFFFFF == 0x100800
    assert by_fn[0xB].edx == 5 and by_fn[0xB].ebx == 1
    assert by_fn[0].ebx == 0x756E6547 and by_fn[0x80000000].eax == 0x80000008


def test_the_supported_table_is_not_changed() -> None:
    base = supported()
    cpuid_for_vcpu(base, 3)
    assert base.entries[1].ebx >> 24 == 0  # type: ignore[attr-defined]
