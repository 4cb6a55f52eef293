"""A QEMU-compatible PC platform: the legacy devices and firmware tables a guest written for
`qemu-system-x86_64` (a kvm-unit-tests image, a multiboot kernel) expects to find.

Each device lives in its own module as a class whose state machine is plain Python (unit tests
drive it without KVM) plus a thin `handle_io` / `handle_mmio` and an `install(machine)` that
registers it through the machine's public handler API. `pc.install_pc_platform` puts them together.
"""

from __future__ import annotations

from .pc import PcPlatform, install_pc_platform

__all__ = ["PcPlatform", "install_pc_platform"]
