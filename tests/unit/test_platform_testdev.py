"""pc-testdev: QEMU's ports and window, the scratch register's byte lanes, IRQ-line writes and the
device memory; installed on a stand-in machine whose routing is the real dispatcher's."""

from __future__ import annotations

import errno
import io
from dataclasses import dataclass, field

import pytest

from tests.fakes import FakeIo, FakeMmio
from vmm.devices import testdev as T
from vmm.devices.testdev import PcTestdev
from vmm.errors import ConfigError, KvmCallFailed
from vmm.runner.dispatch import Dispatcher


class FakeMemory:
    def __init__(self, size: int) -> None:
        self.size = size

    def contains(self, gpa: int, length: int = 1) -> bool:
        return gpa >= 0 and gpa + length <= self.size


@dataclass
class FakeMachine:
    memory: FakeMemory
    dispatcher: Dispatcher = field(default_factory=Dispatcher)
    log: io.StringIO = field(default_factory=io.StringIO)
    vm: object = None

    def on_io(self, first: int, count: int, handler: object) -> None:
        self.dispatcher.on_io(first, count, handler)  # type: ignore[arg-type]

    def on_mmio(self, base: int, size: int, handler: object) -> None:
        self.dispatcher.on_mmio(base, size, handler)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, irq: int, level: int) -> None:
        self.calls.append((irq, level))


def access(dev: PcTestdev, port: int, size: int, value: int | None = None) -> int:
    ex = FakeIo(port, size, value is not None, value or 0)
    dev.handle_io(ex)  # type: ignore[arg-type]
    return ex.value


def test_addresses_are_qemus() -> None:
    assert (T.IOPORT, T.FLUSH_PORT, T.IOPORT_BYTE, T.IRQ_BASE, T.IRQ_COUNT) == (0xE0, 0xE4, 0xE8, 0x2000, 24)
    assert (T.IOMEM_BASE, T.IOMEM_SIZE) == (0xFF000000, 0x10000)


def test_scratch_register_reads_back_by_lanes() -> None:
    dev = PcTestdev(Recorder())
    access(dev, 0xE0, 4, 0x12345678)
    assert access(dev, 0xE0, 4) == 0x12345678
    assert access(dev, 0xE1, 1) == 0x56
    assert access(dev, 0xE2, 2) == 0x1234
    access(dev, 0xE3, 1, 0xAB)
    assert access(dev, 0xE0, 4) == 0xAB345678


def test_byte_register_shares_the_data() -> None:
    dev = PcTestdev(Recorder())
    access(dev, 0xE8, 4, 0xCAFEF00D)
    assert access(dev, 0xE0, 4) == 0xCAFEF00D
    assert access(dev, 0xEA, 1) == 0xFE
    assert access(dev, 0xE8, 2) == 0xF00D


def test_irq_ports_raise_and_lower_lines() -> None:
    rec = Recorder()
    dev = PcTestdev(rec)
    access(dev, 0x2004, 1, 1)
    access(dev, 0x2004, 1, 0)
    access(dev, 0x200B, 1, 0x80)
    access(dev, 0x2017, 1, 1)
    access(dev, 0x2005, 2, 1)  # byte-wide only: ignored
    assert rec.calls == [(4, 1), (4, 0), (11, 1), (23, 1)]
    assert access(dev, 0x2004, 1) == 0


def test_flush_port_takes_dwords() -> None:
    flushed: list[int] = []
    dev = PcTestdev(Recorder(), flushed.append)
    access(dev, 0xE4, 4, 0x12345678)
    access(dev, 0xE4, 2, 0x1000)  # not a dword: ignored
    assert flushed == [0x12345000]
    assert access(dev, 0xE4, 4) == 0


def test_device_memory_reads_back() -> None:
    dev = PcTestdev(Recorder())
    dev.handle_mmio(FakeMmio(0xFF000010, 8, True, bytes(range(1, 9))))  # type: ignore[arg-type]
    ex = FakeMmio(0xFF000012, 4, False)
    dev.handle_mmio(ex)  # type: ignore[arg-type]
    assert ex.data == bytes([3, 4, 5, 6])
    ex = FakeMmio(0xFF00FFFE, 4, False)  # runs off the end: zeros
    dev.handle_mmio(ex)  # type: ignore[arg-type]
    assert ex.data == bytes(4)


def test_install_routes_ports_but_keeps_the_debug_console() -> None:
    m = FakeMachine(FakeMemory(16 << 20))
    debugcon = object()
    m.on_io(0xE9, 1, debugcon)
    dev = PcTestdev(Recorder())
    dev.install(m)  # type: ignore[arg-type]
    d = m.dispatcher
    for port in (0xE0, 0xE3, 0xE4, 0xE8, 0xEA, 0xEB, 0x2000, 0x2017):
        assert d.port_handler(port) == dev.handle_io, hex(port)
    assert d.port_handler(0xE9) is debugcon
    assert d.port_handler(0x2018) is d.unhandled_io
    assert d.mmio_handler(0xFF00FFFF) == dev.handle_mmio


def test_install_refuses_ram_over_the_window() -> None:
    with pytest.raises(ConfigError):
        PcTestdev(Recorder()).install(FakeMachine(FakeMemory(0xFF001000)))  # type: ignore[arg-type]


def test_vm_irq_line_calls_the_vm_or_notes_once() -> None:
    m = FakeMachine(FakeMemory(1 << 20))
    irq = T.vm_irq_line(m)  # type: ignore[arg-type]
    irq(1, 1)
    irq(1, 0)
    assert m.log.getvalue().count("no irqchip") == 1
    rec = Recorder()

    class Vm:
        irq_line = rec

    m.vm = Vm()
    irq(9, 1)
    assert rec.calls == [(9, 1)]


def test_vm_irq_line_without_an_irqchip_notes_once() -> None:
    class NoChip:
        def irq_line(self, irq: int, level: int) -> None:
            raise KvmCallFailed("KVM_IRQ_LINE", errno.ENXIO)

    class Broken:
        def irq_line(self, irq: int, level: int) -> None:
            raise KvmCallFailed("KVM_IRQ_LINE", errno.EBADF)

    m = FakeMachine(FakeMemory(1 << 20), vm=NoChip())
    irq = T.vm_irq_line(m)  # type: ignore[arg-type]
    irq(4, 1)
    irq(4, 0)
    assert m.log.getvalue().count("no irqchip") == 1
    m.vm = Broken()
    with pytest.raises(KvmCallFailed):
        irq(4, 1)
