"""What a handler returns: None to resume the guest, or a `Stop`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stop:
    """End the run with process status `status`. `fatal` asks for the guest-state report."""

    status: int
    reason: str
    fatal: bool = False


Verdict = Stop | None
