"""Log every violation on stderr and deny it: the write is dropped, the guest carries on."""

from __future__ import annotations

import sys

from vmm.spp.event import DENY, SppEvent, SppVerdict


def policy(event: SppEvent) -> SppVerdict:
    sys.stderr.write(f"spp: denied {event.describe()}\n")
    return DENY
