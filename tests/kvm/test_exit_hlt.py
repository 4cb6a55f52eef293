"""HLT ends the run: status 0, and the reason says whether interrupts were still enabled."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

# real mode at 0x7c00: sti; hlt
STI_HLT = bytes.fromhex("fb f4")


def test_hello_long_ends_with_guest_halted() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hello-long").read_bytes(), CpuMode.LONG)
        result = m.run()

    assert result.status == ExitStatus.OK
    assert result.reason == "guest halted"
    assert result.report == ""  # a clean halt is not fatal: no guest-state dump


def test_hlt_with_interrupts_enabled_is_reported_as_such() -> None:
    # nothing will ever raise an interrupt, so the monitor ends the run instead of waiting forever
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(STI_HLT, CpuMode.REAL)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert result.reason == "guest halted with interrupts enabled and no interrupt source"
