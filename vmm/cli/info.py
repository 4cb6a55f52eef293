"""`pyvmm info`: what this host offers pyvmm."""

from __future__ import annotations

from vmm.cpu.catalog import MODELS
from vmm.cpu.cpuid import table_from_kvm
from vmm.cpu.models import FEATURES, HOST_MODELS, Table, feature_offered
from vmm.kvm.system import Kvm


def cpu_report(supported: Table) -> list[str]:
    """The -cpu models and QEMU's feature names, split by whether this host's KVM offers them."""
    offered = sorted(n for n, f in FEATURES.items() if feature_offered(supported, f))
    missing = sorted(n for n, f in FEATURES.items() if not feature_offered(supported, f))
    return [
        "CPU models (-cpu): " + ", ".join([*HOST_MODELS, *MODELS]),
        f"CPU features KVM offers here ({len(offered)}): " + " ".join(offered),
        f"CPU features KVM cannot offer here ({len(missing)}): " + " ".join(missing),
    ]


def host_report() -> str:
    kvm = Kvm()
    try:
        lines = [f"KVM API version: {kvm.api_version}", f"vCPU mmap size: {kvm.vcpu_mmap_size} bytes", "capabilities:"]
        for name, value in kvm.capabilities().items():
            lines.append(f"  {name:<24}{value}")
        from vmm.spp.choice import describe_backend_choice

        lines.append(describe_backend_choice(kvm))
        lines += cpu_report(table_from_kvm(kvm.supported_cpuid()))
        return "\n".join(lines)
    finally:
        kvm.close()
