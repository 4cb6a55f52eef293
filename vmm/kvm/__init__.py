"""The file-descriptor wrappers: `Kvm` (/dev/kvm), `Vm`, `Vcpu`, and the typed exits a vCPU
returns. Nothing above this layer issues an ioctl."""

from __future__ import annotations

from vmm.kvm.system import Kvm
from vmm.kvm.vcpu import Vcpu
from vmm.kvm.vm import Vm

__all__ = ["Kvm", "Vcpu", "Vm"]
