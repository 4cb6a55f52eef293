"""Example SPP policies. Use one by name (`--policy log-and-deny`) or copy it as a starting point.

A policy is a callable taking an `SppEvent` and returning a verdict from `vmm.spp.event`, or None
to leave the decision to the next policy (and in the end to the default, Deny).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
BUILTIN = {p.stem.replace("_", "-"): p for p in HERE.glob("*.py") if p.stem != "__init__"}
