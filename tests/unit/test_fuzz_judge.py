"""The fuzzers' judge reads the README's status table and applies the README's promises; and their
example budget follows PYVMM_FUZZ_EXAMPLES and HYPOTHESIS_PROFILE."""

from __future__ import annotations

import pytest

from tests.fuzz.budget import FUZZ_FACTOR, examples
from tests.fuzz.judge import Outcome, judge, readme_statuses
from vmm.errors import ExitStatus

TABLE = """
### Exit status

| status | meaning |
| --- | --- |
| 0 | ok |
| 0-255 | a handler's |
| odd | the guest's |
| 2 | bad command line |
| 130 | Ctrl-C |

### Next
| 7 | not part of it |
"""


def outcome(status: int | None, stderr: str, timeout: float | None = None) -> Outcome:
    o = Outcome(["run"], status, b"", stderr, 0.5, timeout)
    judge(o, readme_statuses(TABLE))
    return o


def test_the_table_is_read_from_the_section_only() -> None:
    t = readme_statuses(TABLE)
    assert t.numbers == {0, 2, 130} and t.odd
    assert 3 in t and 255 in t and 4 not in t and 7 in t  # 7 is odd
    assert -1 not in t and 256 not in t


def test_every_status_pyvmm_defines_is_in_the_real_readme() -> None:
    table = readme_statuses()
    missing = [s for s in ExitStatus if s not in table]
    assert missing == []


def test_verdicts() -> None:
    assert outcome(2, "pyvmm: bad\n").failure is None
    assert outcome(2, "pyvmm: bad\nmore\n").failure == "multiline"
    assert outcome(4, "pyvmm: x\n").failure == "status"
    assert outcome(43, "").failure is None  # a guest's status under -q: no summary line
    assert outcome(2, "").failure == "multiline"  # refused, and said nothing
    assert outcome(2, "Traceback (most recent call last):\n").failure == "traceback"
    assert outcome(-11, "").failure == "signal"
    assert outcome(None, "").failure == "hang"
    ran = "pyvmm: timed out after 1 s; exit status 16 after 9 exits in {} s\nrip=...\n"
    assert outcome(130, ran.format("1.900"), timeout=1.0).failure is None  # a report may follow a run
    assert outcome(130, ran.format("2.100"), timeout=1.0).failure == "overrun"
    assert outcome(130, ran.format("1.000"), timeout=1.0).exits == 9


def test_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYVMM_FUZZ_EXAMPLES", raising=False)
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    assert examples(25) == 25
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "fuzz")
    assert examples(25) == 25 * FUZZ_FACTOR
    monkeypatch.setenv("PYVMM_FUZZ_EXAMPLES", "3")
    assert examples(25) == 3
    monkeypatch.delenv("PYVMM_FUZZ_EXAMPLES")
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "typo")
    with pytest.raises(ValueError):
        examples(25)
