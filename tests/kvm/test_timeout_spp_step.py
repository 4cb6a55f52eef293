"""`--timeout` ends a run whatever the SPP engine's single-step fallback is doing: far-jmp-unbacked
with a protected page used to step the same MMIO read for ever, deaf to the timeout."""

from __future__ import annotations

import time

import pytest
from conftest import guest, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def test_far_jmp_unbacked_with_spp_ends_at_its_timeout() -> None:
    t0 = time.monotonic()
    proc = pyvmm("run", str(guest("far-jmp-unbacked")), "--spp", "0x400000", "--timeout", "2", timeout=30)
    elapsed = time.monotonic() - t0
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert proc.returncode == ExitStatus.TIMEOUT, err
    assert "timed out after 2 s; exit status 16" in err
    assert elapsed < 2 + 1 + 1.5, elapsed  # timeout + 1 s, plus the interpreter's start-up
