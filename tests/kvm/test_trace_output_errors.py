"""A trace that cannot be written (a full device) ends the run with one line and its own status
(50), not an OSError traceback after the summary."""

from __future__ import annotations

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def test_trace_to_a_full_device() -> None:
    proc = pyvmm("run", str(guest("hello-long")), "--trace", "/dev/full", "-serial", "null")
    line = one_line_error(proc, ExitStatus.OUTPUT_FAILED)
    assert "trace file '/dev/full' could not be written: No space left on device" in line


def test_trace_to_dev_null_still_works() -> None:
    proc = pyvmm("run", str(guest("hello-long")), "--trace", "/dev/null", "-serial", "null")
    assert proc.returncode == ExitStatus.OK, proc.stderr
