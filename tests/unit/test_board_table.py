"""The board table without KVM: which built-in device answers each port on the real buses, where
isa-debug-exit goes, and the fw_cfg / CMOS / table contents derived from RAM."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.fakes import FakeIo
from vmm.board.board import BusRegions
from vmm.board.bus import AddressSpace
from vmm.board.memory import GuestMemory
from vmm.board.options import DeviceOptions, Peripherals
from vmm.board.pc import write_firmware_tables
from vmm.board.table import builtin_devices, place
from vmm.devices import fw_cfg as F
from vmm.devices.console import Console
from vmm.devices.notices import GuestNotices
from vmm.devices.post import PostPorts
from vmm.devices.testdev import PcTestdev
from vmm.errors import ConfigError
from vmm.firmware import acpi
from vmm.verdict import Stop

if TYPE_CHECKING:
    from vmm.devices.protocol import Device

MIB = 1 << 20


class Board:
    """The board's buses and devices over real guest RAM (a memfd), with nothing of KVM."""

    def __init__(self, mem: int, **opts: Any) -> None:
        self.memory = GuestMemory()
        self.memory.add_ram(0, mem)
        self.ports = AddressSpace("port", 0x10000, direct_index=True)
        self.mmio = AddressSpace("address", 1 << 52, direct_index=False)
        self.log = io.StringIO()
        self.irqs: list[tuple[int, int]] = []
        notices = GuestNotices(self.log)
        p = Peripherals(self.memory, Console(io.BytesIO()), notices,
                        lambda irq, level: self.irqs.append((irq, level)), lambda gpa: None,
                        BusRegions(self.ports, self.mmio, notices))  # fmt: skip
        self.options = DeviceOptions(**opts)
        self.devices = builtin_devices(self.options, p)
        for d in self.devices:
            place(d, self.ports, self.mmio, self.memory)

    def device(self, kind: type) -> Any:
        return next((d for d in self.devices if isinstance(d, kind)), None)

    def owner(self, port: int) -> str | None:
        m = self.ports.lookup(port)
        return None if m is None else m.name

    def io(self, port: int, size: int, value: int | None = None) -> tuple[int, Any]:
        m = self.ports.lookup(port)
        ex = FakeIo(port, size, value is not None, value or 0, base=None if m is None else m.base)
        if m is None:
            return 0xFFFFFFFF, None
        verdict = m.handler(ex)
        return ex.value, verdict

    def close(self) -> None:
        self.memory.close()


@pytest.fixture
def pc() -> Iterator[Board]:
    b = Board(128 * MIB, platform="pc", ncpus=2)
    yield b
    b.close()


def test_every_device_answers_its_ports(pc: Board) -> None:
    expected = {
        0x3F8: "isa-serial", 0x3FF: "isa-serial", 0xE9: "isa-debugcon", 0x1000: "ucall",
        0xF4: "isa-debug-exit", 0xF7: "isa-debug-exit", 0x510: "fw_cfg", 0x511: "fw_cfg",
        0x70: "mc146818rtc", 0x71: "mc146818rtc", 0x60: "i8042", 0x64: "i8042", 0x92: "port92",
        0x80: "post", 0xED: "post", 0x81: "dma-page-registers", 0x8F: "dma-page-registers",
        0xCF8: "i440FX-pcihost", 0xCFF: "i440FX-pcihost",
    }  # fmt: skip
    assert {port: pc.owner(port) for port in expected} == expected
    assert pc.owner(0xE0) is None and pc.owner(0x61) is None  # no testdev; port 0x61 is KVM's PIT


def test_a_minimal_board_has_only_the_guest_interface() -> None:
    b = Board(16 * MIB)
    try:
        assert sorted({m.name for m in b.ports.mappings()}) == ["isa-debug-exit", "isa-debugcon", "isa-serial", "ucall"]
    finally:
        b.close()


def fw_read(b: Board, key: int, n: int) -> bytes:
    b.io(0x510, 2, key)
    return bytes(b.io(0x511, 1)[0] for _ in range(n))


def test_fw_cfg_describes_the_machine() -> None:
    b = Board(128 * MIB, platform="pc", ncpus=4)
    try:
        assert fw_read(b, F.SIGNATURE, 4) == b"QEMU"
        assert fw_read(b, F.RAM_SIZE, 8) == struct.pack("<Q", 128 * MIB)
        assert fw_read(b, F.NB_CPUS, 2) == b"\4\0"
        assert fw_read(b, F.MAX_CPUS, 2) == b"\4\0"
        d = fw_read(b, F.FILE_DIR, 4 + 64)
        assert d[:4] == b"\0\0\0\1" and d[12:20] == b"etc/e820"
        e820 = fw_read(b, 0x20, 40)
        assert struct.unpack("<QQIQQI", e820) == (0, 128 * MIB, 1, 0xFFFBC000, 0x4000, 2)
    finally:
        b.close()


def test_cmos_through_the_ports(pc: Board) -> None:
    def cmos(reg: int) -> int:
        pc.io(0x70, 1, reg)
        return pc.io(0x71, 1)[0]

    assert (cmos(0x34), cmos(0x35)) == (0x00, 0x07)
    assert cmos(0x5F) == 1  # CPU count - 1


def test_resets_end_the_run_with_status_zero(pc: Board) -> None:
    _, verdict = pc.io(0x64, 1, 0xFE)
    assert isinstance(verdict, Stop) and verdict.status == 0
    _, verdict = pc.io(0x92, 1, 0x01)
    assert isinstance(verdict, Stop) and verdict.status == 0


def test_post_ports(pc: Board) -> None:
    assert pc.io(0x80, 1, 0x42)[1] is None
    assert pc.io(0x80, 1)[0] & 0xFF == 0xFF
    assert pc.io(0xED, 1)[0] & 0xFF == 0xFF
    assert pc.device(PostPorts).codes == [0x42]
    pc.io(0x81, 2, 0x1234)
    assert pc.io(0x82, 1)[0] == 0x12


def test_debug_exit_moves_or_goes() -> None:
    b = Board(16 * MIB, platform="pc", debug_exit=(0x501, 2))
    try:
        assert b.owner(0xF4) is None
        _, verdict = b.io(0x501, 1, 0x10)
        assert verdict == Stop(0x21, "guest wrote 0x10 to the debug-exit port")
    finally:
        b.close()
    b = Board(16 * MIB, platform="pc", debug_exit=None)
    try:
        assert b.owner(0xF4) is None
    finally:
        b.close()


@pytest.mark.parametrize(("iobase", "iosize"), [(0x10000, 4), (0xFFFE, 4), (0xF4, 0), (0xF4, 0x1000), (0xF4, 3)])
def test_a_debug_exit_that_does_not_fit_is_refused(iobase: int, iosize: int) -> None:
    with pytest.raises(ConfigError, match="isa-debug-exit"):
        Board(16 * MIB, debug_exit=(iobase, iosize))


def test_tables_written_when_ram_covers_the_bios_area(pc: Board) -> None:
    tables = write_firmware_tables(pc.memory, 2, pc.log)
    assert tables.rsdp is not None and acpi.find_rsdp(pc.memory.read) == tables.rsdp
    assert tables.mp_floating_pointer == 0xF0000 and pc.memory.read(0xF0000, 4) == b"_MP_"
    small = Board(512 * 1024, platform="pc")
    try:
        tables = write_firmware_tables(small.memory, 1, small.log)
        assert tables.rsdp is None and tables.mp_floating_pointer is None
        assert "no ACPI or MP tables" in small.log.getvalue()
    finally:
        small.close()


def test_testdev_opt_in_and_its_irq_lines() -> None:
    b = Board(16 * MIB, testdev=True)
    try:
        assert isinstance(b.device(PcTestdev), PcTestdev)
        b.io(0xE0, 4, 0xDEADBEEF)
        assert b.io(0xE0, 4)[0] == 0xDEADBEEF
        assert b.owner(0xE9) == "isa-debugcon" and b.owner(0xE8) == "pc-testdev"
        b.io(0x2004, 1, 1)
        assert b.irqs == [(4, 1)]
    finally:
        b.close()


def test_pci_testdev_opt_in_with_its_bars_on_the_buses() -> None:
    b = Board(16 * MIB, platform="pc", pci_testdev=True)
    try:
        assert b.owner(0xC000) == "pci-testdev BAR" and b.owner(0xC0FF) == "pci-testdev BAR"
        b.io(0xCF8, 4, 1 << 31 | 2 << 11)
        assert b.io(0xCFC, 4)[0] == 0x0005_1B36
    finally:
        b.close()
    plain = Board(16 * MIB, platform="pc")
    try:
        assert plain.owner(0xC000) is None
        plain.io(0xCF8, 4, 1 << 31 | 2 << 11)
        assert plain.io(0xCFC, 4)[0] == 0xFFFFFFFF
    finally:
        plain.close()


def test_a_device_whose_mmio_lies_in_ram_is_refused_whole() -> None:
    memory = GuestMemory()
    memory.add_ram(0, 16 * MIB)
    try:
        ports = AddressSpace("port", 0x10000, direct_index=True)
        mmio = AddressSpace("address", 1 << 52, direct_index=False)
        dev: Device = PcTestdev(lambda irq, level: None)
        big = GuestMemory()
        big.add_ram(0xFF000000, 0x10000)  # RAM where pc-testdev's memory would go
        with pytest.raises(ConfigError, match="pc-testdev: MMIO 0xff000000-0xff00ffff lies inside guest RAM"):
            place(dev, ports, mmio, big)
        assert ports.mappings() == [] and mmio.mappings() == []  # all of the device or none of it
        big.close()
    finally:
        memory.close()
