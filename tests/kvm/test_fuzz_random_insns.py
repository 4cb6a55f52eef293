"""Random instructions at CPL 0 and CPL 3, with an IDT whose handlers count and report every
exception and without one (the first exception is a triple fault): the fixed seed set make guests
builds, through the real command with a short --timeout. Whatever the random code does (loops,
faults, wrecks its tables, hits instructions KVM cannot emulate, writes to ports), the monitor ends
the run with a status from the README's table, without a traceback or a signal death, and within
a second of its --timeout (tests/fuzz/judge.py). New seeds are `make fuzz`'s."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fuzz.guests import ci_random_insns_images
from tests.fuzz.judge import run_pyvmm

pytestmark = pytest.mark.kvm

TIMEOUT = 1.0
WALL_LIMIT = TIMEOUT + 20  # start-up on a loaded host; a run past --timeout is judged from its own time


PARALLEL = 2  # the machine's CPUs: each run is a process of its own


def judged(image: Path) -> str | None:
    argv = ["run", str(image), "--timeout", repr(TIMEOUT)]
    outcome = run_pyvmm(argv, timeout=TIMEOUT, wall_limit=WALL_LIMIT)
    if outcome.failure is not None:
        return f"{image.name}: {outcome.failure}: {argv}\n{outcome.detail}"
    if outcome.exits == 0:  # the harness ran: at least its own set-up exits
        return f"{image.name}: no exits\n{outcome.stderr}"
    return None


def test_the_fixed_seed_set() -> None:
    images = ci_random_insns_images()
    with ThreadPoolExecutor(PARALLEL) as pool:
        problems = [p for p in pool.map(judged, images) if p is not None]
    assert problems == [], "\n\n".join(problems)
