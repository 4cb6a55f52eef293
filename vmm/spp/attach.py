"""Attaching SPP to a machine: the controller, the chosen backend and the guest's ucall requests."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from vmm.devices import ucall as uc
from vmm.spp.controller import Spp
from vmm.spp.masks import FULL, SppError
from vmm.verdict import Verdict

if TYPE_CHECKING:
    from vmm.machine import Machine


def attach_spp(machine: Machine, backend: str, abi: str | None) -> Spp:
    if backend == "kernel":
        from vmm.spp.kernel import attach_kernel_backend

        spp = attach_kernel_backend(machine, abi)
    elif backend in ("software", "auto"):
        from vmm.spp.software import SoftwareSpp

        spp = Spp(machine, lambda spp: SoftwareSpp(machine, spp))
    else:
        raise SppError(f"unknown SPP backend {backend!r} (choose auto, software or kernel)")
    _register_ucalls(machine, spp)
    return spp


def _register_ucalls(machine: Machine, spp: Spp) -> None:
    """A guest may protect its own structures (as introspection agents do) through the ucall port."""

    def change(call: uc.Ucall, mask: int) -> Verdict:
        """Set `mask` on args[1] pages from args[0]; a refusal is logged and told to the guest."""
        try:
            spp.protect(call.args[0], mask, call.args[1])
            call.result = 0
        except SppError as e:
            machine.log.write(f"pyvmm: guest {call.name} refused: {e}\n")
            call.result = -errno.EINVAL
        return None

    def query(call: uc.Ucall) -> Verdict:
        call.args[2] = spp.mask(call.args[0])
        call.result = 0
        return None

    machine.ucall.on(uc.SPP_PROTECT, lambda call: change(call, call.args[2]))
    machine.ucall.on(uc.SPP_RELEASE, lambda call: change(call, FULL))
    machine.ucall.on(uc.SPP_QUERY, query)
