"""Per-vCPU CPUID: KVM's supported leaves, shaped for the `-cpu` model (vmm.cpu.models), with each
vCPU's APIC id and the machine's topology filled in, as `struct kvm_cpuid2` for KVM_SET_CPUID2."""

from __future__ import annotations

from collections.abc import Sequence

from vmm.cpu.models import HOST_MODELS, CpuRequest, Leaf, ShapedCpu, Table, for_vcpu, shape
from vmm.kvm.calls import new

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any


def table_from_kvm(cpuid: Any) -> Table:
    """A `struct kvm_cpuid2 *` as a table of leaves."""
    out: Table = {}
    for i in range(int(cpuid.nent)):
        e = cpuid.entries[i]
        leaf = Leaf(int(e.function), int(e.index), int(e.flags), int(e.eax), int(e.ebx), int(e.ecx), int(e.edx))
        out[(leaf.function, leaf.index)] = leaf
    return out


def to_kvm(leaves: Sequence[Leaf]) -> Any:
    n = len(leaves)
    cpuid = new("struct kvm_cpuid2 *", {"nent": n, "entries": n})
    cpuid.nent = n
    for i, leaf in enumerate(leaves):
        e = cpuid.entries[i]
        e.function, e.index, e.flags = leaf.function, leaf.index, leaf.flags
        e.eax, e.ebx, e.ecx, e.edx = leaf.eax, leaf.ebx, leaf.ecx, leaf.edx
    return cpuid


def host_brand(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The host CPU's brand string, which QEMU copies into `-cpu host` and `max`. Linux shows it
    as "model name" (the 48 bytes of CPUID 0x80000002-4 less the padding spaces at either end;
    KVM_GET_SUPPORTED_CPUID has zeros there)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip()
    except OSError:
        return None
    return None


def shaped_cpu(supported: Any, request: CpuRequest) -> ShapedCpu:
    brand = host_brand() if request.model in HOST_MODELS and request.model_id is None else None
    return shape(table_from_kvm(supported), request, brand)


def cpuid_for_vcpu(shaped: ShapedCpu | Any, apic_id: int, ncpus: int = 1) -> Any:
    """The `struct kvm_cpuid2 *` for one vCPU: `shaped` (a ShapedCpu, or KVM's supported table
    as is) with 1.EBX[31:24] and the x2APIC id of leaves 0xB and 0x1F set to `apic_id`, so an SMP
    guest tells its CPUs apart, and QEMU's topology for `ncpus`."""
    table = shaped.table if isinstance(shaped, ShapedCpu) else table_from_kvm(shaped)
    return to_kvm(for_vcpu(table, apic_id, ncpus))

