"""A 64-bit guest runs to completion and the vCPU is in long mode afterwards."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


def test_hello_long_prints_and_runs_in_64_bit_mode() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hello-long").read_bytes(), CpuMode.LONG)
        result = m.run()
        sregs = m.vcpu.get_sregs()

    assert bytes(m.console.transcript) == b"Hello from 64-bit long mode\n"
    assert result.status == ExitStatus.OK
    assert sregs.cr0 & (CR0_PE | CR0_PG) == CR0_PE | CR0_PG
    assert sregs.cr4 & CR4_PAE
    # LMA is set by the CPU only when long mode is really active, not merely enabled
    assert sregs.efer & (EFER_LME | EFER_LMA) == EFER_LME | EFER_LMA
    # 64-bit code segment: L set, D/B clear
    assert sregs.cs.l == 1 and sregs.cs.db == 0
