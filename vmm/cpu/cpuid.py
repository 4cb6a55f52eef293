"""Per-vCPU CPUID: KVM's supported leaves with each vCPU's APIC id filled in."""

from __future__ import annotations

from typing import Any

from kvm_abi import ffi
from vmm.kvm.calls import new


def cpuid_for_vcpu(supported: Any, apic_id: int) -> Any:
    """A copy of `supported` (a struct kvm_cpuid2 *) in which leaf 1 EBX[31:24] and the x2APIC id
    of leaves 0xB and 0x1F are `apic_id`, so an SMP guest tells its CPUs apart."""
    n = int(supported.nent)
    cpuid = new("struct kvm_cpuid2 *", {"nent": n, "entries": n})
    cpuid.nent = n
    ffi.memmove(cpuid.entries, supported.entries, n * ffi.sizeof("struct kvm_cpuid_entry2"))
    for i in range(n):
        e = cpuid.entries[i]
        if e.function == 1:
            e.ebx = (e.ebx & 0x00FFFFFF) | (apic_id & 0xFF) << 24
        elif e.function in (0xB, 0x1F):
            e.edx = apic_id
    return cpuid
