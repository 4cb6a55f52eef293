"""Log every violation on stderr and deny it: the write is dropped, the guest carries on."""

from __future__ import annotations

import sys

from vmm.spp.event import DENY, SppEvent, Verdict


def policy(event: SppEvent) -> Verdict:
    sys.stderr.write(f"spp: denied {event.describe()}\n")
    return DENY
