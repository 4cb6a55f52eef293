"""A real-mode guest runs to completion and the vCPU is still in real mode afterwards."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CR0_PE, CR0_PG, EFER_LMA, CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


def test_hello_real_prints_and_stays_in_real_mode() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hello-real").read_bytes(), CpuMode.REAL)
        result = m.run()
        sregs = m.vcpu.get_sregs()

    assert bytes(m.console.transcript) == b"Hello from real mode\n"
    assert result.status == ExitStatus.OK
    # protection and paging off, no long mode: the guest never left 16-bit real mode
    assert sregs.cr0 & CR0_PE == 0
    assert sregs.cr0 & CR0_PG == 0
    assert sregs.efer & EFER_LMA == 0
    # real-mode segments: base is selector * 16 and the code segment is 16-bit
    assert sregs.cs.base == sregs.cs.selector << 4
    assert sregs.cs.db == 0 and sregs.cs.l == 0
