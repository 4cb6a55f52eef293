"""Each vCPU's CPUID carries its own APIC id and the machine's topology as QEMU gives it; every other
value stays as KVM supplied it."""

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
    c = cpuid_for_vcpu(base, 5, 8)
    by_key = {(c.entries[i].function, c.entries[i].index): c.entries[i] for i in range(c.nent)}
    # APIC id 5, 8 logical CPUs in the package, the CLFLUSH size untouched
    assert by_key[(1, 0)].ebx >> 24 == 5 and by_key[(1, 0)].ebx & 0xFFFFFF == 0x080800
    assert by_key[(1, 0)].edx & (1 << 28)  # HTT with several CPUs
    # 0xB: SMT level (1 CPU), core level (8 CPUs, 3 APIC-id bits), then the invalid level
    assert [(by_key[(0xB, i)].eax, by_key[(0xB, i)].ebx, by_key[(0xB, i)].ecx) for i in range(3)] == [
        (0, 1, 0x100), (3, 8, 0x201), (0, 0, 2)
    ]
    assert all(by_key[(0xB, i)].edx == 5 for i in range(3))
    assert by_key[(0, 0)].ebx == 0x756E6547 and by_key[(0x80000000, 0)].eax == 0x80000008
    one = cpuid_for_vcpu(base, 0, 1)
    leaf1 = next(one.entries[i] for i in range(one.nent) if one.entries[i].function == 1)
    assert leaf1.ebx & 0xFF0000 == 0 and not leaf1.edx & (1 << 28)  # QEMU leaves the count 0 for one CPU


def test_the_supported_table_is_not_changed() -> None:
    base = supported()
    cpuid_for_vcpu(base, 3)
    assert base.entries[1].ebx >> 24 == 0  # type: ignore[attr-defined]
