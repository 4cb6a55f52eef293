"""pc-testdev: QEMU's ports and window, the scratch register's byte lanes, IRQ-line writes and the
device memory; installed on a stand-in machine whose routing is the real dispatcher's."""

from __future__ import annotations

from tests.fakes import mmio_access, port_access
from vmm.devices import testdev as T
from vmm.devices.testdev import PcTestdev


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, irq: int, level: int) -> None:
        self.calls.append((irq, level))


def access(dev: PcTestdev, port: int, size: int, value: int | None = None) -> int:
    return port_access(dev, port, size, value)[0]


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
    mmio_access(dev, 0xFF000010, 8, bytes(range(1, 9)))
    assert mmio_access(dev, 0xFF000012, 4)[0] == bytes([3, 4, 5, 6])
    assert mmio_access(dev, 0xFF00FFFE, 4)[0] == bytes(4)  # runs off the end: zeros


def test_regions_are_qemus_but_leave_the_debug_console() -> None:
    regions = {(r.space, r.start, r.size, r.base) for r in PcTestdev(Recorder()).regions()}
    assert regions == {
        ("io", 0xE0, 8, None), ("io", 0xE8, 1, 0xE0), ("io", 0xEA, 1, 0xE0), ("io", 0xEB, 1, 0xE0),
        ("io", 0x2000, 24, None), ("mmio", 0xFF000000, 0x10000, None),
    }  # fmt: skip
