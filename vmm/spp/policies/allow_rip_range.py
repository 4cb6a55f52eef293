"""Allow writes made by code in one RIP range (say, the guest's own updater) and deny the rest.

The range comes from PYVMM_ALLOW_RIP="START-END" when used by name; from a script, call
`make_policy(start, end)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from vmm.errors import ConfigError
from vmm.numbers import parse_int
from vmm.spp.event import ALLOW, DENY, SppEvent, SppVerdict


def make_policy(start: int, end: int) -> Callable[[SppEvent], SppVerdict]:
    def allow_rip_range(event: SppEvent) -> SppVerdict:
        return ALLOW if event.rip is not None and start <= event.rip < end else DENY

    return allow_rip_range


def _from_env() -> tuple[int, int]:
    # a missing or wrong setting is the command line's mistake: one line, status 2 (a ValueError
    # here was reported as the policy failing, with pyvmm's own traceback)
    text = os.environ.get("PYVMM_ALLOW_RIP", "")
    if "-" not in text:
        raise ConfigError(
            '--policy allow-rip-range: set PYVMM_ALLOW_RIP="START-END" to the RIP range whose writes are allowed'
        )
    a, b = text.split("-", 1)
    try:
        return parse_int(a, "RIP"), parse_int(b, "RIP")
    except ValueError as e:
        raise ConfigError(f"--policy allow-rip-range: PYVMM_ALLOW_RIP={text!r}: {e}") from None


def setup(spp: object) -> None:
    from vmm.spp.controller import Spp

    assert isinstance(spp, Spp)
    start, end = _from_env()
    spp.add_policy(make_policy(start, end))
