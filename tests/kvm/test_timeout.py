"""A guest that never exits is stopped by the timeout, with the timeout status and its registers."""

from __future__ import annotations

import io
import time

import pytest
from conftest import guest, pyvmm

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


def test_library_timeout_stops_a_hung_guest() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hang").read_bytes(), CpuMode.LONG)
        t0 = time.monotonic()
        result = m.run(timeout=0.5)
        elapsed = time.monotonic() - t0

    assert result.status == ExitStatus.TIMEOUT
    assert "rip=" in result.report
    assert "code at" in result.report
    assert 0.4 <= elapsed < 5


def test_cli_timeout_stops_a_hung_guest() -> None:
    t0 = time.monotonic()
    proc = pyvmm("run", "--timeout", "0.5", str(guest("hang")), timeout=30)
    elapsed = time.monotonic() - t0

    err = proc.stderr.decode()
    assert proc.returncode == ExitStatus.TIMEOUT
    assert "pyvmm: timed out after 0.5 s" in err
    assert "rip=" in err
    assert "Traceback" not in err
    assert elapsed < 5
