"""A property over the whole command line: random values for every option (numbers that overflow,
negative, NaN, garbage; paths to nothing, directories, FIFOs, devices, a 3 GiB sparse file; QEMU's
option syntax) through the real `pyvmm` command. Every run keeps the README's promise: a status
from its table (parsed from README.md), no traceback, one line for a refused command, no signal
death, no hang, and a run that obeys its --timeout to within a second.

CI-sized by default; PYVMM_FUZZ_EXAMPLES or HYPOTHESIS_PROFILE=fuzz (tests/fuzz/budget.py) run
more, and `make fuzz` runs new examples for as long as it is asked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.budget import examples
from tests.fuzz.command_lines import MAX_RUN, Corpus, command_lines, effective_timeout, make_corpus
from tests.fuzz.judge import run_pyvmm

pytestmark = pytest.mark.kvm

CORPUS_DIR = Path("/tmp") / "pyvmm-fuzz-corpus"  # the same absolute paths in every example
WALL_LIMIT = MAX_RUN + 20  # start-up on a loaded 2-CPU host, and the run's own second of grace
# device nodes the corpus names as inputs and outputs: a run may write to them, never replace them
DEVICES = ("/dev/null", "/dev/full", "/dev/zero", "/dev/urandom")


def _corpus() -> Corpus:
    return make_corpus(CORPUS_DIR)


@settings(
    max_examples=examples(20), deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(argv=command_lines(_corpus()))
def test_every_command_line_keeps_the_readme_promise(argv: list[str]) -> None:
    outcome = run_pyvmm(argv, timeout=effective_timeout(argv), wall_limit=WALL_LIMIT)
    assert outcome.failure is None, f"{outcome.failure}: {argv!r}\n{outcome.detail}"
    for node in DEVICES:
        assert stat.S_ISCHR(os.lstat(node).st_mode), f"{node} is no longer a character device after {argv!r}"
