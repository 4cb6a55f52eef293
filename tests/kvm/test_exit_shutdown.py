"""A triple fault (KVM_EXIT_SHUTDOWN) stops the run with the triple-fault status and a state report."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


def test_triple_fault_reports_the_faulting_code() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("triple-fault").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.TRIPLE_FAULT
    assert "KVM_EXIT_SHUTDOWN" in result.reason
    assert "rip=" in result.report
    # the report shows the bytes at RIP: the guest's ud2 (0f 0b) that started the fault cascade
    code_lines = [line for line in result.report.splitlines() if "code at" in line]
    assert len(code_lines) == 1
    assert code_lines[0].split(": ", 1)[1].startswith("0f 0b")
