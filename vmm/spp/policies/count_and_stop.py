"""Deny violations, and stop the VM at the Nth one (N from PYVMM_SPP_LIMIT, default 10)."""

from __future__ import annotations

import os

from vmm.spp.event import DENY, SppEvent, SppVerdict, StopVm

LIMIT = int(os.environ.get("PYVMM_SPP_LIMIT", "10"))
seen = 0


def policy(event: SppEvent) -> SppVerdict:
    global seen
    seen += 1
    if seen >= LIMIT:
        return StopVm(f"{seen} SPP violations (limit {LIMIT})")
    return DENY


def snapshot_state() -> dict[str, int]:
    """The count goes into snapshots, so a restored run stops at the same violation."""
    return {"seen": seen}


def restore_state(data: dict[str, int]) -> None:
    global seen
    seen = int(data["seen"])
