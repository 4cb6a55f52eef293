"""`Stop` takes a process status in 0-255 and a string reason; everything else is refused as user
code's error (HANDLER_ERROR), and every status pyvmm itself picks is in that range."""

from __future__ import annotations

from typing import Any

import pytest

from vmm.errors import ExitStatus, UserCodeError, status_of
from vmm.verdict import STATUS_RANGE, Stop


@pytest.mark.parametrize("status", list(ExitStatus))
def test_every_status_of_pyvmm_is_a_valid_stop(status: ExitStatus) -> None:
    assert Stop(status, "built in").status == status
    assert status in STATUS_RANGE


@pytest.mark.parametrize("status", [0, 1, 254, 255])
def test_ints_in_range_are_kept(status: int) -> None:
    assert Stop(status, "x").status == status


@pytest.mark.parametrize("status", [-1, 256, 999, 1 << 70, True, False, 4.0, "abc", None])
def test_other_statuses_are_refused(status: Any) -> None:
    with pytest.raises(UserCodeError, match=r"a stop status is an int in 0-255") as e:
        Stop(status, "x")
    assert status_of(e.value) == ExitStatus.HANDLER_ERROR
    assert e.value.details == ""  # one line: nothing to print after it


def test_reason_must_be_a_string() -> None:
    with pytest.raises(UserCodeError, match=r"Stop\(4, 5\): a stop reason is a string"):
        Stop(4, 5)  # type: ignore[arg-type]


def test_reason_has_a_default() -> None:
    assert Stop(6).reason == "stopped by a handler"
