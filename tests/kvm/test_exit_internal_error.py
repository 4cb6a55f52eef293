"""An instruction KVM cannot emulate stops the run with the internal-error status."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

XGETBV = "0f 01 d0"


def test_emulation_failure_is_an_internal_error() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("emulation-failure").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    # the guest ran up to the bad instruction
    assert bytes(m.console.transcript) == b"before\n"
    assert result.status == ExitStatus.INTERNAL_ERROR
    assert "EMULATION" in result.reason
    # KVM hands over the bytes it fetched; the first instruction is the xgetbv it choked on
    assert f"instruction bytes {XGETBV}" in result.reason
    assert "rip=" in result.report
