"""Accesses beyond RAM are MMIO exits: all-ones by default, or routed to a registered handler."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.kvm.exits import MmioExit
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

WINDOW = 0xD0000000  # the probe writes at WINDOW and reads at WINDOW + 4


def test_unhandled_mmio_read_returns_all_ones() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("mmio-probe").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert bytes(m.console.transcript) == b"mmio read: 0xffffffff\n"


def test_registered_handler_sees_the_write_and_supplies_the_read() -> None:
    accesses: list[tuple[str, int, int, int | None]] = []

    def device(ex: MmioExit) -> None:
        if ex.is_write:
            accesses.append(("write", ex.address, ex.length, ex.value))
        else:
            accesses.append(("read", ex.address, ex.length, None))
            ex.value = 0x12345678

    with Machine(console=io.BytesIO()) as m:
        m.on_mmio(WINDOW, 0x1000, device)
        m.load_flat(guest("mmio-probe").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert accesses == [("write", WINDOW, 4, 0xDEADBEEF), ("read", WINDOW + 4, 4, None)]
    assert bytes(m.console.transcript) == b"mmio read: 0x12345678\n"
