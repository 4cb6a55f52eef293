"""Ctrl-C delivered to a helper thread: the kernel may hand a process-directed SIGINT to any
thread that does not block it, here the trace writer. Python runs the handler on the main thread
only, and the supervisor's wait is not interrupted by a signal another thread took, so the
supervisor wakes on its own at least every SIGNAL_POLL seconds: the run still stops with 130.
(Before, with no --timeout, the run went on until the guest ended by itself: never, for `hang`.)
The signal is aimed at the thread with tgkill, which is what the kernel's choice amounts to."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cffi import FFI
from conftest import ROOT, _run_loop_started, guest

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

_ffi = FFI()
_ffi.cdef("int tgkill(int tgid, int tid, int sig);")
_libc = _ffi.dlopen(None)


def threads_taking_sigint(pid: int) -> list[int]:
    """Threads of `pid` other than the main one that do not block SIGINT."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
        if tid != pid and not int(status["SigBlk"].strip(), 16) & (1 << (signal.SIGINT - 1)):
            found.append(tid)
    return found


def test_sigint_taken_by_the_trace_writer_thread_still_stops_the_run(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmm.cli", "run", str(guest("hang")), "--trace", str(tmp_path / "trace")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _run_loop_started(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        time.sleep(0.3)
        targets = threads_taking_sigint(proc.pid)
        assert targets, "no helper thread without SIGINT blocked: nothing to aim at"
        assert _libc.tgkill(proc.pid, targets[0], signal.SIGINT) == 0
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == ExitStatus.INTERRUPTED, err.decode()
    assert "interrupted (Ctrl-C)" in err.decode()
    assert "Traceback" not in err.decode()
