"""Random instructions at CPL 0 and CPL 3, with an IDT whose handlers count and report every
exception and without one (the first exception is a triple fault): the fixed seed set make guests
builds, through the real command with a short --timeout. Whatever the random code does (loops,
faults, wrecks its tables, hits instructions KVM cannot emulate, writes to ports), the monitor ends
the run with a status from the README's table, without a traceback or a signal death, and within
a second of its --timeout (tests/fuzz/judge.py). New seeds are `make fuzz`'s."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.guests import ci_random_insns_images
from tests.fuzz.judge import run_pyvmm

pytestmark = pytest.mark.kvm

TIMEOUT = 1.0
WALL_LIMIT = TIMEOUT + 20  # start-up on a loaded host; a run past --timeout is judged from its own time


def check(image: Path) -> None:
    argv = ["run", str(image), "--timeout", repr(TIMEOUT)]
    outcome = run_pyvmm(argv, timeout=TIMEOUT, wall_limit=WALL_LIMIT)
    assert outcome.failure is None, f"{outcome.failure}: {argv}\n{outcome.detail}"
    assert outcome.exits > 0, outcome.stderr  # the harness ran: at least its own set-up exits


@pytest.mark.parametrize("image", ci_random_insns_images(), ids=lambda p: p.stem)
def test_fixed_seed(image: Path) -> None:
    check(image)
