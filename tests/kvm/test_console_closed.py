"""A console nobody reads any more (`pyvmm run IMAGE | head`, a full disk) does not end the run in
a traceback: the guest runs to its own end, and one line says how much of its output was dropped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import guest

pytestmark = pytest.mark.kvm


def test_a_closed_stdout_pipe_drops_the_output_and_the_run_ends_as_the_guest_says() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the guest prints its first line
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vmm.cli", "run", str(guest("hello-long"))],
            stdout=write_end, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [ln for ln in err.splitlines() if "console output" in ln]
    assert len(lines) == 1, err
    assert "Broken pipe" in lines[0] and "28 bytes of guest output dropped" in lines[0], lines


def test_a_full_disk_behind_the_serial_file_drops_the_output() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vmm.cli", "run", "-serial", "file:/dev/full", str(guest("hello-long"))],
        capture_output=True, timeout=60,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "No space left on device" in err and "bytes of guest output dropped" in err, err
