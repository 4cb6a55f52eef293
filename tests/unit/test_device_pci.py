"""PCI configuration mechanism #1, the i440FX host bridge, BAR sizing and mapping, and QEMU's
pci-testdev registers, on the real bus type."""

from __future__ import annotations

import io

from tests.fakes import FakeIo, FakeMmio, port_access
from vmm.board.board import BusRegions
from vmm.board.bus import AddressSpace
from vmm.devices.notices import GuestNotices
from vmm.devices.pci import PciHost, add_piix
from vmm.devices.pci_testdev import IO_ADDRESS, MMIO_ADDRESS, PciTestdev


def address(slot: int, reg: int, fn: int = 0) -> int:
    return 1 << 31 | slot << 11 | fn << 8 | reg


class Bus:
    def __init__(self) -> None:
        self.ports = AddressSpace("port", 0x10000, direct_index=True)
        self.mmio = AddressSpace("address", 1 << 52, direct_index=False)
        self.log = io.StringIO()
        self.host = PciHost()
        self.testdev = PciTestdev()
        self.host.add(2, self.testdev)
        self.host.attach(BusRegions(self.ports, self.mmio, GuestNotices(self.log)))

    def cfg_read(self, slot: int, reg: int, size: int = 4) -> int:
        port_access(self.host, 0xCF8, 4, address(slot, reg & ~3))
        return port_access(self.host, 0xCFC + (reg & 3), size)[0]

    def cfg_write(self, slot: int, reg: int, size: int, value: int) -> None:
        port_access(self.host, 0xCF8, 4, address(slot, reg & ~3))
        port_access(self.host, 0xCFC + (reg & 3), size, value)

    def io(self, port: int, size: int, value: int | None = None) -> int:
        m = self.ports.lookup(port)
        assert m is not None, f"nothing at port {port:#x}"
        ex = FakeIo(port, size, value is not None, value or 0, base=m.base)
        m.handler(ex)
        return ex.value

    def mem(self, addr: int, size: int, value: int | None = None) -> int:
        m = self.mmio.lookup(addr)
        assert m is not None, f"nothing at {addr:#x}"
        data = b"" if value is None else value.to_bytes(size, "little")
        ex = FakeMmio(addr, size, value is not None, data, base=m.base)
        m.handler(ex)
        return int.from_bytes(ex.data[:size], "little")


def test_bus_0_holds_the_host_bridge_and_the_testdev_and_nothing_else() -> None:
    b = Bus()
    assert b.cfg_read(0, 0) == 0x1237_8086
    assert b.cfg_read(0, 8) == 0x0600_0002  # class 06.00.00, revision 2
    assert b.cfg_read(2, 0) == 0x0005_1B36
    assert b.cfg_read(2, 8) == 0x00FF_0000
    assert b.cfg_read(2, 0x2C) == 0x1100_1AF4  # QEMU's subsystem ids
    assert b.cfg_read(2, 0x3C) >> 8 & 0xFF == 0  # interrupt pin 0
    for slot in (1, 3, 31):
        assert b.cfg_read(slot, 0) == 0xFFFFFFFF
    assert b.cfg_read(0, 0, 2) == 0x8086 and b.cfg_read(0, 2, 2) == 0x1237


def test_the_data_port_reads_all_ones_unless_enabled_and_odd_address_accesses_do_nothing() -> None:
    b = Bus()
    port_access(b.host, 0xCF8, 4, 0x0000_0000)  # bit 31 clear
    assert port_access(b.host, 0xCFC, 4)[0] == 0xFFFFFFFF
    port_access(b.host, 0xCF8, 4, address(0, 0))
    port_access(b.host, 0xCF8, 1, 0x00)  # a byte write is not the address register
    assert port_access(b.host, 0xCF8, 4)[0] == address(0, 0)
    assert port_access(b.host, 0xCFA, 2)[0] == 0xFFFF


def test_bars_size_and_are_assigned_and_mapped() -> None:
    b = Bus()
    assert b.cfg_read(2, 0x10) == MMIO_ADDRESS and b.cfg_read(2, 0x14) == IO_ADDRESS | 1
    b.cfg_write(2, 0x04, 2, 0)  # decoding off while sizing
    assert b.mmio.lookup(MMIO_ADDRESS) is None and b.ports.lookup(IO_ADDRESS) is None
    b.cfg_write(2, 0x10, 4, 0xFFFFFFFF)
    b.cfg_write(2, 0x14, 4, 0xFFFFFFFF)
    b.cfg_write(2, 0x18, 4, 0xFFFFFFFF)
    assert b.cfg_read(2, 0x10) == 0xFFFFF000  # 4 KiB of memory
    assert b.cfg_read(2, 0x14) == 0xFFFFFF01  # 256 ports
    assert b.cfg_read(2, 0x18) == 0  # not implemented
    b.cfg_write(2, 0x10, 4, 0xFD000000)  # the guest moves BAR0
    b.cfg_write(2, 0x14, 4, IO_ADDRESS)
    b.cfg_write(2, 0x04, 2, 3)
    assert b.mmio.lookup(0xFD000000) is not None and b.mmio.lookup(MMIO_ADDRESS) is None
    assert b.ports.lookup(IO_ADDRESS + 0xFF) is not None


def test_testdev_tests_as_qemu_defines_them() -> None:
    b = Bus()
    assert b.mem(MMIO_ADDRESS + 4, 4) == 0  # no test selected
    b.mem(MMIO_ADDRESS, 1, 0)  # mmio test 0: no-eventfd
    assert b.mem(MMIO_ADDRESS + 4, 4) == 0x800 and b.mem(MMIO_ADDRESS + 1, 1) == 1
    assert b.mem(MMIO_ADDRESS + 8, 1) == 0xFA
    name = bytes(b.mem(MMIO_ADDRESS + 16 + i, 1) for i in range(15))
    assert name == b"mmio-no-eventfd"
    for _ in range(3):
        b.mem(MMIO_ADDRESS + 0x800, 1, 0xFA)
    b.mem(MMIO_ADDRESS + 0x800, 1, 0x11)  # wrong data: not counted
    assert b.mem(MMIO_ADDRESS + 12, 4) == 3
    b.io(IO_ADDRESS, 1, 1)  # portio test 1: wildcard-eventfd, watching 0x84
    assert b.io(IO_ADDRESS + 4, 4) == 0x84 and b.io(IO_ADDRESS + 8, 1) == 0xCE
    b.io(IO_ADDRESS + 0x84, 1, 0x55)  # caught by the ioeventfd QEMU registers: never counted
    assert b.io(IO_ADDRESS + 12, 4) == 0
    b.io(IO_ADDRESS + 0x84, 2, 0x55)  # 2 bytes wide: the eventfd does not match, the device counts
    assert b.io(IO_ADDRESS + 12, 4) == 1
    b.io(IO_ADDRESS, 1, 3)  # 3 selects nothing
    assert b.io(IO_ADDRESS + 4, 4) == 0


def test_the_piix_functions_as_qemus_pc_machine_has_them() -> None:
    host = PciHost()
    add_piix(host, 0x600)
    ids = {devfn: (f.config_read(0, 4), f.config_read(8, 4), f.config_read(0xC, 4) >> 16 & 0xFF)
           for devfn, f in host.functions.items()}  # fmt: skip
    assert ids == {
        0x00: (0x12378086, 0x06000002, 0x00),
        0x08: (0x70008086, 0x06010000, 0x80),  # multi-function: enumerators look at 01.1-01.7
        0x09: (0x70108086, 0x01018000, 0x00),
        0x0B: (0x71138086, 0x06800003, 0x00),
    }
    pm = host.functions[0x0B]
    assert pm.config_read(0x40, 4) == 0x601 and pm.config_read(0x80, 1) == 1  # PMBA: the FADT's block
    assert all(host.functions[0x09].config_read(0x10 + 4 * i, 4) == 0 for i in range(6))  # no IDE BARs
