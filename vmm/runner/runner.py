"""`Runner`: the vCPU threads of a run, the thread that supervises them, and how a run ends.

Every vCPU runs its loop on a thread of its own; the calling thread supervises: it starts the
threads, waits for the first stop, enforces `timeout` (a stop at the deadline, and a vCPU thread
that does not come back within `STOP_GRACE` after it is given up on, so a run never outlives its
timeout for long), and handles Ctrl-C and SIGTERM when the caller opts in (the CLI does; a library
caller keeps its own signal handlers). The per-exit loop is `_loop`: one screen, no policy. A run
with a trace or a timeline uses the recorders' loop instead (`vmm.runner.records`), chosen once
per run, so a run without one pays nothing for them.

Kicks reach a vCPU inside KVM_RUN as a thread-directed SIGUSR1. The vCPU threads block it, and
KVM_SET_SIGNAL_MASK unblocks it only while the thread is inside KVM_RUN: it interrupts KVM_RUN
(EINTR) and is otherwise never delivered, so no process-wide handler is needed and kicks work
whichever thread built the machine. `Vcpu.run` consumes the pending signal at the EINTR it caused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from vmm.errors import ExitStatus, PyvmmError, UserCodeError, status_of
from vmm.kvm.exits import Exit, IntrExit
from vmm.kvm.vcpu import Vcpu
from vmm.record import TupleRecord
from vmm.runner.control import KICK_SIGNAL, RunControl
from vmm.runner.participant import Participant, RunContext
from vmm.runner.policy import Routes, all_to
from vmm.runner.report import guest_state
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    import signal
    from typing import Any
else:  # signal.py's C half: the same calls, without the enums signal.py builds at import
    import _signal as signal

STOP_GRACE = 0.75  # seconds a vCPU thread gets to leave after a stop before the run gives up on it
# The supervisor never sleeps longer than this. Python runs signal handlers on the main thread, but
# the kernel may deliver a process-directed SIGINT to any thread that does not block it (a helper
# thread: the trace writer, the SPP watchdog, the gdb stub); the main thread's wait is then not
# interrupted, and without a bound Ctrl-C would wait for the run to end by itself.
SIGNAL_POLL = 0.2
POWER_BUTTON_SIGNAL = signal.SIGUSR2  # with handled signals: press the machine's power button
_SUPERVISOR_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGALRM, POWER_BUTTON_SIGNAL}
Handle = Callable[[Exit], Verdict]
Observer = Callable[[Handle], Handle]  # wraps the exit policy: statistics, triggers
if TYPE_CHECKING:
    Loop = Callable[[Any, Handle, Routes | None], Stop]  # a vCPU thread's run loop: (vcpu, handle, routes)


class RunResult(TupleRecord):
    status: int
    reason: str
    exits: int
    seconds: float
    report: str = ""  # guest state and, for handler errors, the traceback
    vcpu: int = 0  # the vCPU whose exit ended the run
    stuck: tuple[int, ...] = ()  # vCPU threads that did not come back (their vCPUs must not be closed)

    @property
    def ok(self) -> bool:
        return self.status == 0


class Runner:
    def __init__(self, vcpus: Sequence[Vcpu], memory_reader: Any) -> None:
        self.vcpus = list(vcpus)
        self.control = RunControl(self.vcpus)
        self.participants: list[Participant] = []
        self._memory = memory_reader  # for the guest-state report (page-table walk, code bytes)
        self._by_index = {v.index: v for v in self.vcpus}
        self._masked: set[int] = set()  # vCPUs whose KVM_RUN signal mask is set
        self.running = False
        self.power_button: Callable[[], None] | None = None  # what SIGUSR2 presses, with handled signals
        self._ctx: RunContext | None = None  # the run under way
        self._started: list[Participant] = []  # participants told the run started: told it ends

    def attach(self, participant: Participant) -> None:
        """Add a participant; one attached while a run is under way (SPP turned on by a debugger's
        watchpoint, a monitor made from a handler) is told the run started now, and ends with it."""
        if participant in self.participants:
            return
        self.participants.append(participant)
        ctx = self._ctx
        if self.running and ctx is not None:
            participant.run_started(ctx)
            self._started.append(participant)

    # --- infrastructure exits ------------------------------------------------------------------
    def on_interrupt(self, ex: IntrExit) -> Verdict:
        """A kick or a signal brought the vCPU out of KVM_RUN: honour a stop, a pause, and the
        participants' work, then re-enter."""
        vcpu = self._by_index[ex.vcpu.index]
        vcpu.clear_stop()
        control = self.control
        if control.pending is not None:
            return control.pending
        control.park_if_asked(vcpu)
        if control.pending is not None:
            return control.pending
        for p in self.participants:
            verdict = p.on_kick(vcpu)
            if verdict is not None:
                return verdict
        return None  # a kick with nothing to do: re-enter

    # --- a run -----------------------------------------------------------------------------------
    def run(
        self,
        handle: Handle,
        *,
        timeout: float | None = None,
        handle_signals: bool = False,
        observers: Sequence[Observer] = (),
        routes: Routes | None = None,
        loop: Loop | None = None,
    ) -> RunResult:
        """Run every vCPU until one stops; the first stop is the run's result. `routes`, the port
        and MMIO routers the policy uses for IO and MMIO exits, let the loop skip the policy's
        lookup for them; observers see every exit, so with any the loop goes through `handle` alone.
        `loop` replaces the plain run loop (`_loop`, the same contract): a recording one."""
        for wrap in observers:
            handle = wrap(handle)
        if observers:
            routes = None
        control = self.control
        control.prepare()
        start = time.perf_counter()
        exits_before = sum(v.exits for v in self.vcpus)
        ctx = RunContext(self.vcpus, control, handle)
        started: list[Participant] = []
        self._started = started
        stuck: tuple[int, ...] = ()
        self.running = True
        try:
            with self._signals(handle_signals):
                for p in list(self.participants):
                    p.run_started(ctx)
                    started.append(p)
                self._ctx = ctx  # from here a participant attached is started by attach()
                args = (handle, routes, loop or _loop)
                threads = [
                    threading.Thread(target=self._vcpu_main, args=(v, *args), name=f"pyvmm-vcpu{v.index}", daemon=True)
                    for v in self.vcpus
                ]
                # the threads inherit the blocked supervisor signals: none can land on a vCPU
                # thread before it has blocked them itself
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
                try:
                    for t in threads:
                        t.start()
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                stuck = self._supervise(timeout)
        finally:
            self.running = False
            self._ctx = None
            for p in reversed(started):
                p.run_ended(ctx)
        outcome = control.outcome
        assert outcome is not None  # every loop records how it ended, and a stuck run is recorded too
        stop, report = outcome.stop, outcome.report
        reason = stop.reason if len(self.vcpus) == 1 else f"vCPU {outcome.vcpu.index}: {stop.reason}"
        if (stop.fatal or stop.status == ExitStatus.TIMEOUT) and outcome.vcpu.index not in stuck:
            report += guest_state(outcome.vcpu, self._memory)
        exits = sum(v.exits for v in self.vcpus) - exits_before
        return RunResult(stop.status, reason, exits, time.perf_counter() - start, report, outcome.vcpu.index, stuck)

    def _supervise(self, timeout: float | None) -> tuple[int, ...]:
        """Wait for the run to end; enforce the deadline; a Ctrl-C without opted-in handlers
        (KeyboardInterrupt here) still stops and joins every vCPU before it propagates."""
        control = self.control
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not control.wait_for_stop(_slice(deadline)):
                if deadline is not None and time.monotonic() >= deadline:
                    control.request_stop(Stop(ExitStatus.TIMEOUT, f"timed out after {timeout:g} s"))
            # Without a deadline a slow handler is waited for; with one, a vCPU thread that does not
            # come back is inside a handler or a participant that ignores the stop, and the run
            # ends without it (its vCPU is left alone, not closed).
            if deadline is None:
                while not control.wait(SIGNAL_POLL):
                    pass
                return ()
            if control.wait(STOP_GRACE):
                return ()
            stuck = tuple(v.index for v in control.running())
            control.record(
                self._by_index[stuck[0]],
                Stop(
                    control.pending.status if control.pending else ExitStatus.TIMEOUT,
                    f"{control.pending.reason if control.pending else 'stopped'}; vCPU thread(s) {list(stuck)} "
                    f"did not come back within {STOP_GRACE:g} s and were abandoned",
                ),
                "",
            )
            return stuck
        except BaseException:
            control.request_stop(Stop(ExitStatus.INTERRUPTED, "interrupted (Ctrl-C)"))
            control.wait(STOP_GRACE * 4)
            if control.outcome is None:
                control.record(self.vcpus[0], Stop(ExitStatus.INTERRUPTED, "interrupted (Ctrl-C)"), "")
            raise

    def _vcpu_main(self, vcpu: Vcpu, handle: Handle, routes: Routes | None, loop: Loop) -> None:
        # Ctrl-C, SIGTERM and timers belong to the supervising thread; the kick signal is blocked
        # here and let through by KVM only while this thread is inside KVM_RUN.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS | {KICK_SIGNAL})
        report = ""
        control = self.control
        control.enter(vcpu)
        try:
            try:
                if vcpu.index not in self._masked:
                    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set())
                    vcpu.set_signal_mask({int(s) for s in blocked} - {KICK_SIGNAL}, kick=KICK_SIGNAL)
                    self._masked.add(vcpu.index)
                verdict = loop(vcpu, handle, routes)
            except PyvmmError as e:
                verdict = Stop(status_of(e), str(e), fatal=not isinstance(e, UserCodeError))
                report = e.details
            except Exception:
                import traceback  # only a failing handler needs it: kept off every run's start-up

                verdict = Stop(ExitStatus.HANDLER_ERROR, "an exit handler raised an exception", fatal=True)
                report = traceback.format_exc()
            except BaseException as e:  # SystemExit or KeyboardInterrupt raised by a handler
                what = f"sys.exit({e.code!r})" if isinstance(e, SystemExit) else type(e).__name__
                verdict = Stop(ExitStatus.HANDLER_ERROR, f"an exit handler raised {what}; handlers return a verdict")
            # Recorded before leaving: the supervisor's wait ends at the last leave and reads the
            # outcome then (recorded after, a run could end with none: seen once in 10,000 resets),
            # and recording kicks every vCPU through its kvm_run page, which a machine closed as
            # soon as the run returned had unmapped already (a SIGSEGV).
            control.record(vcpu, verdict, report)
        finally:
            control.leave(vcpu)

    @contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        """Ctrl-C and SIGTERM end the run through a stop, on the supervising (main) thread; a
        second Ctrl-C interrupts the supervisor at once. SIGUSR2 presses the power button, where
        the machine has one."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum: int, frame: Any) -> None:
            self.control.request_stop(Stop(ExitStatus.INTERRUPTED, "interrupted (Ctrl-C)"))
            signal.signal(signal.SIGINT, signal.default_int_handler)

        def on_sigterm(signum: int, frame: Any) -> None:
            self.control.request_stop(Stop(ExitStatus.TERMINATED, "terminated (SIGTERM)"))

        def on_power_button(signum: int, frame: Any) -> None:
            if self.power_button is not None:
                self.power_button()

        old_int = signal.signal(signal.SIGINT, on_sigint)
        old_term = signal.signal(signal.SIGTERM, on_sigterm)
        old_button = signal.signal(POWER_BUTTON_SIGNAL, on_power_button)
        try:
            yield
        finally:
            signal.signal(POWER_BUTTON_SIGNAL, old_button)
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)


def _slice(deadline: float | None) -> float:
    """How long the supervisor may sleep: until the deadline, and never past SIGNAL_POLL."""
    if deadline is None:
        return SIGNAL_POLL
    return max(0.0, min(SIGNAL_POLL, deadline - time.monotonic()))


def _loop(vcpu: Vcpu, handle: Handle, routes: Routes | None) -> Stop:
    """The run loop: enter the guest, hand each exit to the policy, until a verdict ends it. Port
    and MMIO exits, the most frequent, go straight to their bus's router when nothing observes
    them. The loop itself is `Vcpu.serve` (vmm.kvm.exits.make_serve), which owns KVM_RUN."""
    verdict = vcpu.serve(handle, routes or all_to(handle))
    if verdict.__class__ is not Stop:
        raise UserCodeError(f"a handler returned {verdict!r}, which is not a verdict (None or a Stop)")
    return verdict
