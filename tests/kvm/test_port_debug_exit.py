"""The isa-debug-exit port at 0xf4: writing v ends the run with status (v << 1) | 1."""

from __future__ import annotations

import io

import pytest
from conftest import guest, pyvmm

from vmm.cpu.modes import CpuMode
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


def test_exit_code_guest_gets_status_43() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("exit-code").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)
    assert result.status == 43
    assert "0x15" in result.reason  # debug_exit(21)


def test_exit_code_guest_status_is_the_process_status() -> None:
    proc = pyvmm("run", str(guest("exit-code")))
    assert proc.returncode == 43
    assert b"Traceback" not in proc.stderr
