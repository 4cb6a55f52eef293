"""`pyvmm info`: what this host offers pyvmm."""

from __future__ import annotations

from vmm.kvm.system import Kvm


def host_report() -> str:
    kvm = Kvm()
    try:
        lines = [f"KVM API version: {kvm.api_version}", f"vCPU mmap size: {kvm.vcpu_mmap_size} bytes", "capabilities:"]
        for name, value in kvm.capabilities().items():
            lines.append(f"  {name:<24}{value}")
        from vmm.spp.choice import describe_backend_choice

        lines.append(describe_backend_choice(kvm))
        return "\n".join(lines)
    finally:
        kvm.close()
