"""The debug console at 0xe9: bytes written are printed, a read returns 0xe9 (its detection value)."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

# real mode at 0x7c00: in al, 0xe9; out 0xe9, al; hlt
READ_BACK = bytes.fromhex("fa e4 e9 e6 e9 f4")


def test_ports_guest_prints_on_the_debug_console() -> None:
    out = io.BytesIO()
    with Machine(console=out) as m:
        m.load_flat(guest("ports").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert b"debugcon ok\n" in bytes(m.console.transcript)
    # the stream given as console receives the same bytes as the transcript
    assert out.getvalue() == bytes(m.console.transcript)


def test_reading_the_port_returns_its_number() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(READ_BACK, CpuMode.REAL)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert bytes(m.console.transcript) == b"\xe9"
