"""The 16550 UART at 0x3f8: transmit reaches the console, LSR always says "ready", the scratch
register keeps what was written."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.devices.uart import LCR, MCR
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

LSR_IDLE = 0x60  # THRE | TEMT: transmitter empty, nothing received

# real mode at 0x7c00: print LSR on 0xe9, write 0x5a to the scratch register, clear AL, read the
# scratch register back and print it on 0xe9, halt
LSR_AND_SCRATCH = bytes.fromhex(
    "fa"  # cli
    "ba fd 03"  # mov dx, 0x3fd (LSR)
    "ec"  # in al, dx
    "e6 e9"  # out 0xe9, al
    "ba ff 03"  # mov dx, 0x3ff (SCR)
    "b0 5a"  # mov al, 0x5a
    "ee"  # out dx, al
    "30 c0"  # xor al, al
    "ec"  # in al, dx
    "e6 e9"  # out 0xe9, al
    "f4"  # hlt
)


def test_ports_guest_prints_through_the_uart() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("ports").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert bytes(m.console.transcript).startswith(b"uart ok\n")
    # the guest's serial_init programmed 8N1 and DTR | RTS
    assert m.uart.read(LCR) == 0x03
    assert m.uart.read(MCR) == 0x03


def test_guest_reads_lsr_and_round_trips_the_scratch_register() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(LSR_AND_SCRATCH, CpuMode.REAL)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert bytes(m.console.transcript) == bytes([LSR_IDLE, 0x5A])
    assert m.uart.scr == 0x5A
