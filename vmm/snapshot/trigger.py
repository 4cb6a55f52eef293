"""When a run stops to be snapshotted: at the Nth ucall SYNC, exit or SPP event (`sync:N`,
`exits:N`, `spp:N`).

The trigger does not end the run from inside the exit that reached the count: it requests a stop,
so every vCPU, the counting one included, re-enters KVM_RUN with immediate_exit set. KVM then
completes what the last exit left pending (an OUT's or an MMIO write's retirement) and returns
without running another guest instruction. Every vCPU therefore ends at a clean point, where the
state KVM reports is the whole state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmm.errors import ConfigError, ExitStatus
from vmm.kvm.exits import Exit
from vmm.runner.control import RunControl
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

KINDS = ("sync", "exits", "spp")
Handle = Callable[[Exit], Verdict]


@dataclass(frozen=True)
class SnapshotAt:
    kind: str
    count: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.count}"


def parse_snapshot_at(text: str) -> SnapshotAt:
    kind, _, count = text.partition(":")
    if kind not in KINDS or not count.isdigit() or int(count) < 1:
        raise ConfigError(f"--snapshot-at {text!r}: give sync:N, exits:N or spp:N with N >= 1")
    return SnapshotAt(kind, int(count))


class Trigger:
    def __init__(self, at: SnapshotAt, control: RunControl) -> None:
        self.at = at
        self.control = control
        self.seen = 0
        self.marker = Stop(ExitStatus.OK, f"stopped for a snapshot at {at}")

    def hit(self) -> None:
        self.seen += 1
        if self.seen == self.at.count:
            self.control.request_stop(self.marker)

    def fired(self) -> bool:
        """Whether the last run ended because this trigger stopped it."""
        outcome = self.control.outcome
        return outcome is not None and outcome.stop is self.marker

    # --- where the counting happens -------------------------------------------------------------
    def counting(self, handler: Callable[[T], Verdict]) -> Callable[[T], Verdict]:
        """`handler`, counting each call after it returns: wraps the ucall SYNC handler for
        sync:N and the exit policy (as an observer) for exits:N."""

        def counted(arg: T) -> Verdict:
            verdict = handler(arg)
            self.hit()
            return verdict

        return counted

    def spp_policy(self, event: object) -> None:
        self.hit()
        return None  # leave the verdict to the policies after this one
