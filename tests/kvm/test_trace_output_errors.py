"""Where a trace can go: a character device such as /dev/null works; a FIFO or a directory is refused
by name before the run (a full device is in test_trace_smp: the run goes on and counts the drops)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def test_trace_to_dev_null_still_works() -> None:
    proc = pyvmm("run", str(guest("hello-long")), "--trace", "/dev/null", "-serial", "null")
    assert proc.returncode == ExitStatus.OK, proc.stderr


def test_trace_to_a_fifo_is_refused_by_name(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    proc = pyvmm("run", str(guest("hello-long")), "--trace", str(fifo), "-serial", "null", timeout=20)
    line = one_line_error(proc, ExitStatus.USAGE)
    assert "FIFO" in line or "fifo" in line, line
