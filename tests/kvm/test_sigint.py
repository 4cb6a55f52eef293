"""Ctrl-C (SIGINT) stops a running guest cleanly: status 130, a summary line, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, guest

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

SIGALRM_BIT = 1 << (signal.SIGALRM - 1)


def run_loop_started(pid: int) -> bool:
    """True once the process catches SIGALRM, which pyvmm does only while a guest runs."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & SIGALRM_BIT)
    return False


def test_sigint_interrupts_a_hung_guest() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmm.cli", "run", str(guest("hang"))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # a signal before the run loop would only test Python's KeyboardInterrupt path
        deadline = time.monotonic() + 10
        while not run_loop_started(proc.pid):
            assert proc.poll() is None, "pyvmm exited before the guest ran"
            assert time.monotonic() < deadline, "the run loop never started"
            time.sleep(0.05)
        time.sleep(1)  # let the vCPU spin inside KVM_RUN for a while
        assert proc.poll() is None  # the guest hangs; only the signal can end it

        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=5)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    err = stderr.decode()
    assert proc.returncode == ExitStatus.INTERRUPTED == 130
    assert elapsed < 5
    assert "exit status 130" in err
    assert "interrupted" in err
    assert "Traceback" not in err
