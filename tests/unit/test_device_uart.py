"""The 16550 UART's registers without a guest: transmit reaches the console, LSR says "ready",
the scratch register keeps its byte, DLAB hides the transmitter."""

from __future__ import annotations

import io

from vmm.devices.console import Console
from vmm.devices.uart import LCR, LSR, RBR_THR, SCR, Uart16550

LSR_IDLE = 0x60  # THRE | TEMT: transmitter empty, nothing received


def test_uart_registers_without_a_guest() -> None:
    out = io.BytesIO()
    console = Console(out)
    uart = Uart16550(console)

    assert uart.read(LSR) == LSR_IDLE
    uart.write(RBR_THR, ord("A"))
    uart.write(RBR_THR, ord("\n"))
    assert bytes(console.transcript) == b"A\n"
    assert out.getvalue() == b"A\n"

    uart.write(SCR, 0xA5)
    assert uart.read(SCR) == 0xA5
    uart.write(SCR, 0x1FF)  # an 8-bit register: only the low byte is kept
    assert uart.read(SCR) == 0xFF

    # with DLAB set, offset 0 is the divisor latch, not the transmitter: nothing is printed
    uart.write(LCR, 0x80)
    uart.write(RBR_THR, 0x01)
    assert uart.read(RBR_THR) == 0x01
    assert bytes(console.transcript) == b"A\n"
