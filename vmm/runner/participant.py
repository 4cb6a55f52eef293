"""Run participants: parts of pyvmm (the SPP engines now; a debugger and snapshots next) that take
part in every run without being special cases of the run loop.

A participant attaches to the runner once. It is told when a run starts (before any vCPU thread
runs) and ends (after every vCPU thread has stopped), and it is asked at every kick (an INTR exit:
a signal or immediate_exit brought a vCPU out of KVM_RUN) whether it has work for that vCPU. Exits
it wants to see first it claims on the exit policy (`ExitPolicy.claim`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vmm.kvm.exits import Exit
from vmm.kvm.vcpu import Vcpu
from vmm.record import TupleRecord
from vmm.runner.control import RunControl
from vmm.verdict import Verdict


class RunContext(TupleRecord):
    """What a participant may use while a run is under way."""

    vcpus: Sequence[Vcpu]
    control: RunControl
    handle: Callable[[Exit], Verdict]  # the exit policy, with tracing and statistics if enabled


class Participant:
    """Base with do-nothing hooks; a participant overrides the ones it needs."""

    def run_started(self, run: RunContext) -> None:
        """Before any vCPU thread starts."""

    def on_kick(self, vcpu: Vcpu) -> Verdict:
        """On the vCPU's own thread, at an INTR exit, after pending stops and pauses are honoured."""
        return None

    def run_ended(self, run: RunContext) -> None:
        """After every vCPU thread has stopped; the vCPUs are outside KVM_RUN."""
