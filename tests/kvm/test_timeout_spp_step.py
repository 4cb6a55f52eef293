"""A far jmp through a pointer in unbacked memory, with a page protected elsewhere, used to make the
SPP engine step the same MMIO read for ever, deaf to `--timeout`. It must end as it does with
nothing protected (an emulation failure, status 10), and never outlive its timeout."""

from __future__ import annotations

import time

import pytest
from conftest import guest, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def test_far_jmp_unbacked_with_spp_ends_as_without_it_within_its_timeout() -> None:
    plain = pyvmm("run", str(guest("far-jmp-unbacked")), "--timeout", "2", timeout=30)
    t0 = time.monotonic()
    proc = pyvmm("run", str(guest("far-jmp-unbacked")), "--spp", "0x400000", "--timeout", "2", timeout=30)
    elapsed = time.monotonic() - t0
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert plain.returncode == ExitStatus.INTERNAL_ERROR, plain.stderr.decode()
    assert proc.returncode == plain.returncode, err
    assert elapsed < 2 + 1 + 1.5, elapsed  # timeout + 1 s, plus the interpreter's start-up
