"""A 32-bit protected-mode guest runs to completion and the vCPU is in protected mode afterwards."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CR0_PE, CR0_PG, EFER_LMA, EFER_LME, CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


def test_hello_protected_prints_and_runs_in_32_bit_protected_mode() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hello-protected").read_bytes(), CpuMode.PROTECTED)
        result = m.run()
        sregs = m.vcpu.get_sregs()

    assert bytes(m.console.transcript) == b"Hello from 32-bit protected mode\n"
    assert result.status == ExitStatus.OK
    assert sregs.cr0 & CR0_PE
    assert sregs.cr0 & CR0_PG == 0  # flat segments, no paging
    assert sregs.efer & (EFER_LME | EFER_LMA) == 0
    # a 32-bit code segment: D/B set, L clear
    assert sregs.cs.db == 1 and sregs.cs.l == 0
