"""Ctrl-C (SIGINT) stops a running guest cleanly: status 130, a summary line, no traceback."""

from __future__ import annotations

import pytest
from conftest import guest, interrupt_running

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def test_sigint_interrupts_a_hung_guest() -> None:
    proc, elapsed = interrupt_running(["run", str(guest("hang"))])
    err = proc.stderr.decode()
    assert proc.returncode == ExitStatus.INTERRUPTED == 130
    assert elapsed < 5
    assert "exit status 130" in err
    assert "interrupted" in err
    assert "Traceback" not in err
