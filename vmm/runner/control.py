"""Coordination between vCPU threads: who runs where, stopping every vCPU, pausing the others.

One thread runs each vCPU. A stop (a handler's verdict, a timeout, Ctrl-C, a fatal exit on any
vCPU) is recorded once (the first wins) and every vCPU is kicked out of KVM_RUN: immediate_exit
covers a vCPU about to enter, SIGUSR1 interrupts one already inside. Work that needs every other
vCPU outside KVM_RUN (rebuilding memslots, single-stepping one instruction with protection lifted)
runs inside `others_paused()`: the others park at their next exit until it is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmm.errors import ExitStatus, PyvmmError
from vmm.verdict import Stop

if TYPE_CHECKING:
    from vmm.kvm.vcpu import Vcpu

PAUSE_TIMEOUT = 10.0  # seconds to wait for the other vCPUs to park


@dataclass
class Outcome:
    vcpu: Vcpu
    stop: Stop
    report: str


class RunControl:
    def __init__(self, vcpus: list[Vcpu]) -> None:
        self.vcpus = vcpus
        self.pending: Stop | None = None  # a stop every vCPU must honour at its next exit
        self.outcome: Outcome | None = None
        self.can_signal = False  # SIGUSR1 has pyvmm's no-op handler, so it only interrupts KVM_RUN
        self._cond = threading.Condition()
        self._threads: dict[int, int] = {}  # vCPU index -> thread ident, while its loop runs
        self._local = threading.local()
        self._pauser: Vcpu | None = None
        self._parked: set[int] = set()

    def reset(self) -> None:
        self.pending = None
        self.outcome = None

    # --- which thread is which -----------------------------------------------------------------
    def current_vcpu(self) -> Vcpu | None:
        """The vCPU whose loop runs on this thread, or None on any other thread."""
        vcpu: Vcpu | None = getattr(self._local, "vcpu", None)
        return vcpu

    def enter(self, vcpu: Vcpu) -> None:
        with self._cond:
            self._local.vcpu = vcpu
            self._threads[vcpu.index] = threading.get_ident()
            while self._pauser is not None:  # a pause began before this thread joined the run
                self._park_locked(vcpu)
        if self.pending is not None:
            vcpu.request_stop()  # a stop that came before this thread could be signalled

    def leave(self, vcpu: Vcpu) -> None:
        with self._cond:
            self._local.vcpu = None
            self._threads.pop(vcpu.index, None)
            self._cond.notify_all()  # a pauser waiting for this vCPU no longer needs to

    # --- kicking and stopping -------------------------------------------------------------------
    def kick(self, vcpus: list[Vcpu] | None = None) -> None:
        """Bring vCPUs out of KVM_RUN to their exit handlers soon (from any thread)."""
        me = threading.get_ident()
        with self._cond:  # the thread cannot leave (and its id go stale) while it is signalled
            for v in self.vcpus if vcpus is None else vcpus:
                v.request_stop()
                ident = self._threads.get(v.index)
                if ident is not None and ident != me and self.can_signal:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pthread_kill(ident, signal.SIGUSR1)

    def request_stop(self, stop: Stop) -> None:
        if self.pending is None:
            self.pending = stop
        self.kick()

    def record(self, vcpu: Vcpu, stop: Stop, report: str) -> None:
        """How one vCPU's loop ended; the first outcome is the run's, and stops the others."""
        with self._cond:
            if self.outcome is None:
                self.outcome = Outcome(vcpu, stop, report)
        self.request_stop(stop)

    # --- pausing ----------------------------------------------------------------------------------
    @contextmanager
    def others_paused(self) -> Iterator[None]:
        """Run the body while every other running vCPU is parked outside KVM_RUN."""
        me = self.current_vcpu()
        if me is None or len(self._threads) <= 1:
            yield
            return
        with self._cond:
            while self._pauser is not None:  # another vCPU is pausing us: park until it is done
                self._park_locked(me)
            self._pauser = me
        others = [v for v in self.vcpus if v is not me]
        self.kick(others)
        with self._cond:
            parked = self._cond.wait_for(
                lambda: all(v.index in self._parked or v.index not in self._threads for v in others),
                timeout=PAUSE_TIMEOUT,
            )
            if not parked:  # never go ahead with a vCPU still running: end the run instead
                self._pauser = None
                self._cond.notify_all()
                stuck = sorted(v.index for v in others if v.index in self._threads and v.index not in self._parked)
                raise PyvmmError(f"vCPUs {stuck} did not pause within {PAUSE_TIMEOUT:g} s", ExitStatus.INTERNAL_ERROR)
        try:
            yield
        finally:
            with self._cond:
                self._pauser = None
                self._cond.notify_all()

    def parked(self, vcpu: Vcpu) -> bool:
        """Whether the vCPU waits, outside KVM_RUN, for another vCPU's pause to end."""
        return vcpu.index in self._parked

    def park_if_asked(self, vcpu: Vcpu) -> None:
        """At an interrupted KVM_RUN: wait here while another vCPU has the others paused."""
        if self._pauser is None or self._pauser is vcpu:
            return
        with self._cond:
            while self._pauser is not None and self._pauser is not vcpu:
                self._park_locked(vcpu)

    def _park_locked(self, vcpu: Vcpu) -> None:
        self._parked.add(vcpu.index)
        self._cond.notify_all()
        self._cond.wait()
        self._parked.discard(vcpu.index)
