"""Coordination between vCPU threads: each vCPU's state, stopping every vCPU, pausing the others.

Every vCPU moves through an explicit state machine, and `_move` is the one place a state changes:

    created --enter--> running --park--> parked --unpark--> running
        \\                 \\                 \\
         `----stop------> stopping <---stop--' ---leave---> done --prepare--> created

A stop (a handler's verdict, a timeout, Ctrl-C, a fatal exit on any vCPU) is recorded once (the
first wins) and every vCPU is kicked out of KVM_RUN: immediate_exit covers a vCPU about to enter,
a thread-directed SIGUSR1 interrupts one already inside (see `vmm.runner.runner` for how the
signal is kept from doing anything else). Work that needs every other vCPU outside KVM_RUN
(rebuilding memslots, executing one instruction with protection lifted) runs inside
`others_paused()`: the others park at their next exit until it is done.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from vmm.errors import RunError
from vmm.kvm.vcpu import Vcpu
from vmm.light_enum import LightEnum
from vmm.record import TupleRecord
from vmm.verdict import Stop

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    import signal
else:  # signal.py's C half: the same calls, without the enums signal.py builds at import
    import _signal as signal

PAUSE_TIMEOUT = 10.0  # seconds to wait for the other vCPUs to park
KICK_SIGNAL = signal.SIGUSR1


class VcpuState(LightEnum):
    CREATED = "created"  # not yet running in this run
    RUNNING = "running"  # its thread is in the run loop (in or out of KVM_RUN)
    PARKED = "parked"  # waiting, outside KVM_RUN, for another vCPU's pause to end
    STOPPING = "stopping"  # a stop is pending for it; it leaves at its next exit
    DONE = "done"  # its loop has ended


_MOVES: dict[VcpuState, frozenset[VcpuState]] = {
    VcpuState.CREATED: frozenset({VcpuState.RUNNING, VcpuState.STOPPING, VcpuState.DONE}),
    VcpuState.RUNNING: frozenset({VcpuState.PARKED, VcpuState.STOPPING, VcpuState.DONE}),
    VcpuState.PARKED: frozenset({VcpuState.RUNNING, VcpuState.STOPPING}),
    VcpuState.STOPPING: frozenset({VcpuState.STOPPING, VcpuState.DONE}),
    VcpuState.DONE: frozenset({VcpuState.CREATED}),
}


class Outcome(TupleRecord):
    vcpu: Vcpu
    stop: Stop
    report: str


class RunControl:
    def __init__(self, vcpus: Sequence[Vcpu]) -> None:
        self.vcpus = list(vcpus)
        self.pending: Stop | None = None  # a stop every vCPU must honour at its next exit
        self.outcome: Outcome | None = None
        self._state = {v.index: VcpuState.DONE for v in self.vcpus}
        self._cond = threading.Condition(threading.RLock())  # re-entrant: a signal handler may stop the run
        self._threads: dict[int, int] = {}  # vCPU index -> thread ident, while its loop runs
        self._local = threading.local()
        self._pauser: Vcpu | None = None

    # --- the state machine ---------------------------------------------------------------------
    def _move(self, vcpu: Vcpu, new: VcpuState) -> None:
        old = self._state[vcpu.index]
        if new not in _MOVES[old]:
            raise RunError(f"vCPU {vcpu.index} cannot go from {old.value} to {new.value}")
        self._state[vcpu.index] = new
        self._cond.notify_all()

    def state(self, vcpu: Vcpu) -> VcpuState:
        return self._state[vcpu.index]

    def prepare(self) -> None:
        """Before a run: every vCPU created, no stop pending, no outcome."""
        with self._cond:
            for v in self.vcpus:
                self._move(v, VcpuState.CREATED)
            self.pending = None
            self.outcome = None

    def current_vcpu(self) -> Vcpu | None:
        """The vCPU whose loop runs on this thread, or None on any other thread."""
        vcpu: Vcpu | None = getattr(self._local, "vcpu", None)
        return vcpu

    def enter(self, vcpu: Vcpu) -> None:
        with self._cond:
            self._local.vcpu = vcpu
            self._threads[vcpu.index] = threading.get_ident()
            if self._state[vcpu.index] is VcpuState.CREATED:
                self._move(vcpu, VcpuState.RUNNING)
                while self._pauser is not None and self._state[vcpu.index] is VcpuState.RUNNING:
                    self._park_locked(vcpu)  # a pause began before this thread joined the run
        if self.pending is not None:
            vcpu.request_stop()  # a stop that came before this thread could be signalled

    def leave(self, vcpu: Vcpu) -> None:
        with self._cond:
            self._local.vcpu = None
            self._threads.pop(vcpu.index, None)
            self._move(vcpu, VcpuState.DONE)

    def running(self) -> list[Vcpu]:
        """The vCPUs whose loops have not ended."""
        return [v for v in self.vcpus if self._state[v.index] is not VcpuState.DONE]

    # --- kicking and stopping -------------------------------------------------------------------
    def kick(self, vcpus: Sequence[Vcpu] | None = None) -> None:
        """Bring vCPUs out of KVM_RUN to their exit handlers soon (from any thread)."""
        me = threading.get_ident()
        with self._cond:  # the thread cannot leave (and its id go stale) while it is signalled
            for v in self.vcpus if vcpus is None else vcpus:
                v.request_stop()
                ident = self._threads.get(v.index)
                if ident is not None and ident != me:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pthread_kill(ident, KICK_SIGNAL)

    def request_stop(self, stop: Stop) -> None:
        """End the run with `stop` unless another stop came first (safe from signal handlers)."""
        with self._cond:
            if self.pending is None:
                self.pending = stop
            for v in self.vcpus:
                if self._state[v.index] in (VcpuState.CREATED, VcpuState.RUNNING, VcpuState.PARKED):
                    self._move(v, VcpuState.STOPPING)
            self.kick()

    def record(self, vcpu: Vcpu, stop: Stop, report: str) -> None:
        """How one vCPU's loop ended; the first outcome is the run's, and stops the others."""
        with self._cond:
            if self.outcome is None:
                self.outcome = Outcome(vcpu, stop, report)
                self._cond.notify_all()  # the supervisor may be waiting for it (wait)
            self.request_stop(stop)

    def wait(self, timeout: float | None) -> bool:
        """On the supervising thread: wait until every loop has ended and recorded how; False if
        `timeout` passed. (A loop leaves, then records: waiting for the leaving alone let a run
        end with no outcome when the supervisor woke in between.)"""
        with self._cond:
            return self._cond.wait_for(lambda: not self.running() and self.outcome is not None, timeout=timeout)

    def wait_for_stop(self, timeout: float | None) -> bool:
        """Wait until a stop is pending (or every loop ended); False if `timeout` passed."""
        with self._cond:
            return self._cond.wait_for(lambda: self.pending is not None or not self.running(), timeout=timeout)

    # --- pausing ----------------------------------------------------------------------------------
    @contextmanager
    def others_paused(self) -> Iterator[None]:
        """Run the body while every other running vCPU is parked outside KVM_RUN."""
        me = self.current_vcpu()
        if me is None or len(self._threads) <= 1 or self._pauser is me:
            yield  # nothing to pause, or this vCPU has the others paused already (a nested pause)
            return
        with self._cond:
            while self._pauser is not None:  # another vCPU is pausing us: park until it is done
                self._park_locked(me)
            self._pauser = me
        others = [v for v in self.vcpus if v is not me]
        self.kick(others)
        with self._cond:
            parked = self._cond.wait_for(
                lambda: all(self._state[v.index] is VcpuState.PARKED or v.index not in self._threads for v in others),
                timeout=PAUSE_TIMEOUT,
            )
            if not parked:  # never go ahead with a vCPU still running: end the run instead
                self._pauser = None
                self._cond.notify_all()
                stuck = sorted(
                    v.index for v in others if v.index in self._threads and self._state[v.index] is not VcpuState.PARKED
                )
                raise RunError(f"vCPUs {stuck} did not pause within {PAUSE_TIMEOUT:g} s")
        try:
            yield
        finally:
            with self._cond:
                self._pauser = None
                self._cond.notify_all()

    def parked(self, vcpu: Vcpu) -> bool:
        """Whether the vCPU waits, outside KVM_RUN, for another vCPU's pause to end."""
        return self._state[vcpu.index] is VcpuState.PARKED

    def park_if_asked(self, vcpu: Vcpu) -> None:
        """At an interrupted KVM_RUN: wait here while another vCPU has the others paused."""
        if self._pauser is None or self._pauser is vcpu:
            return
        with self._cond:
            while self._pauser is not None and self._pauser is not vcpu:
                if self._state[vcpu.index] is not VcpuState.RUNNING:
                    return  # stopping: the pauser does not wait for a vCPU that is leaving
                self._park_locked(vcpu)

    def _park_locked(self, vcpu: Vcpu) -> None:
        self._move(vcpu, VcpuState.PARKED)
        self._cond.wait()
        if self._state[vcpu.index] is VcpuState.PARKED:
            self._move(vcpu, VcpuState.RUNNING)
