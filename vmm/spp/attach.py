"""Attaching SPP to a machine's parts: the host the engines see, the controller with the chosen
backend, its place among the run's participants, and the guest's ucall requests."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from vmm.board.board import Board
from vmm.board.bus import AddressSpace
from vmm.board.memory import GuestMemory
from vmm.board.slots import RamSlots
from vmm.devices import ucall as uc
from vmm.errors import SppRequestError
from vmm.kvm.exits import Exit
from vmm.kvm.system import Kvm
from vmm.kvm.vcpu import Vcpu
from vmm.runner.control import RunControl
from vmm.runner.policy import ExitPolicy
from vmm.runner.runner import Runner
from vmm.spp.controller import Spp
from vmm.spp.masks import FULL
from vmm.verdict import Verdict


class MachineHost:
    """The real `SppHost`: a board's RAM, memslots and MMIO bus, the exit policy, the runner's
    control of the vCPU threads."""

    def __init__(self, board: Board, policy: ExitPolicy, runner: Runner, note: Callable[..., None]) -> None:
        self._board = board
        self._policy = policy
        self._runner = runner
        self._note = note
        self._by_index = {v.index: v for v in board.vcpus}

    @property
    def memory(self) -> GuestMemory:
        return self._board.memory

    @property
    def slots(self) -> RamSlots:
        return self._board.slots

    @property
    def mmio(self) -> AddressSpace:
        return self._board.mmio

    @property
    def control(self) -> RunControl:
        return self._runner.control

    @property
    def vcpus(self) -> Sequence[Vcpu]:
        return self._board.vcpus

    @property
    def log(self) -> TextIO:
        return self._board.log

    @property
    def kvm(self) -> Kvm:
        return self._board.kvm

    @property
    def vm_fd(self) -> int:
        return self._board.vm.fd

    def vcpu(self, index: int) -> Vcpu:
        return self._by_index[index]

    def claim(self, kind: type[Exit] | int, claim: Callable[[Any], Any]) -> None:
        self._policy.claim(kind, claim)

    def exit_handler(self, kind: type[Exit] | int) -> Callable[[Any], Verdict]:
        return self._policy.handler_for(kind)

    def handle(self, ex: Exit) -> Verdict:
        return self._policy.handle(ex)

    def note(self, kind: str, **fields: Any) -> None:
        self._note(kind, **fields)

    def enable_cap(self, cap: int, *args: int) -> bool:
        vm = self._board.vm
        if not vm.check_extension(cap):
            return False
        vm.enable_cap(cap, *args)
        return True


def attach_spp(
    host: MachineHost, ucalls: uc.UcallPort, backend: str, abi: str | None, *, kernel_ioctl: Any = None
) -> Spp:
    """`kernel_ioctl`: what the kernel backend calls in place of ioctl (a stand-in for a patched
    kernel, where none runs); the real call when None."""
    if backend == "kernel":
        from vmm.spp.kernel import attach_kernel_backend

        if kernel_ioctl is None:
            spp: Spp = attach_kernel_backend(host, abi)
        else:
            spp = attach_kernel_backend(host, abi, ioctl=kernel_ioctl)
    elif backend in ("software", "auto"):
        from vmm.spp.software import SoftwareSpp

        spp = Spp(host, lambda spp: SoftwareSpp(host, spp))
    else:
        raise SppRequestError(f"unknown SPP backend {backend!r} (choose auto, software or kernel)")
    host._runner.attach(spp)
    _register_ucalls(ucalls, spp)
    return spp


def _register_ucalls(ucalls: uc.UcallPort, spp: Spp) -> None:
    """A guest may protect its own structures (as introspection agents do) through the ucall port."""

    def change(call: uc.Ucall, mask: int) -> Verdict:
        """Set `mask` on args[1] pages from args[0]; a refusal is noted and told to the guest."""
        try:
            spp.protect(call.args[0], mask, call.args[1])
            call.result = 0
        except SppRequestError as e:
            ucalls.notices.say(f"guest {call.name} refused: {e}")
            call.result = -errno.EINVAL
        return None

    def query(call: uc.Ucall) -> Verdict:
        call.args[2] = spp.mask(call.args[0])
        call.result = 0
        return None

    ucalls.on(uc.SPP_PROTECT, lambda call: change(call, call.args[2]))
    ucalls.on(uc.SPP_RELEASE, lambda call: change(call, FULL))
    ucalls.on(uc.SPP_QUERY, query)
