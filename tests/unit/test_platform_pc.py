"""install_pc_platform on a stand-in machine whose routing is the real dispatcher's: which device
answers each port, the debug-exit move, and the fw_cfg / CMOS / table contents it derives from RAM."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import FakeIo
from vmm.board.pc import install_pc_platform
from vmm.devices import fw_cfg as F
from vmm.firmware import acpi
from vmm.runner.dispatch import Dispatcher
from vmm.verdict import Stop

MIB = 1 << 20


@dataclass
class Region:
    gpa: int
    size: int

    @property
    def end(self) -> int:
        return self.gpa + self.size


class FakeMemory:
    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self.regions = [Region(0, size)]

    def contains(self, gpa: int, length: int = 1) -> bool:
        return gpa >= 0 and gpa + length <= len(self.buf)

    def write(self, gpa: int, data: bytes) -> None:
        self.buf[gpa : gpa + len(data)] = data

    def read(self, gpa: int, length: int) -> bytes:
        return bytes(self.buf[gpa : gpa + length])


@dataclass
class FakeMachine:
    memory: FakeMemory
    dispatcher: Dispatcher = field(default_factory=Dispatcher)
    log: io.StringIO = field(default_factory=io.StringIO)
    vm: Any = None

    def __post_init__(self) -> None:
        # what Machine registers before the platform comes in
        self.machine_debug_exit = lambda ex: Stop(3, "machine's debug exit")
        self.on_io(0xF4, 4, self.machine_debug_exit)
        self.dispatcher.unhandled_io = self._unhandled

    def _unhandled(self, ex: Any) -> None:
        if not ex.is_write:
            ex.value = 0xFFFFFFFF

    def on_io(self, first: int, count: int, handler: Any) -> None:
        self.dispatcher.on_io(first, count, handler)

    def on_mmio(self, base: int, size: int, handler: Any) -> None:
        self.dispatcher.on_mmio(base, size, handler)

    def io(self, port: int, size: int, value: int | None = None) -> tuple[int, Any]:
        ex = FakeIo(port, size, value is not None, value or 0)
        verdict = self.dispatcher.port_handler(port)(ex)
        return ex.value, verdict


def fw_read(m: FakeMachine, key: int, n: int) -> bytes:
    m.io(0x510, 2, key)
    return bytes(m.io(0x511, 1)[0] for _ in range(n))


def test_every_device_answers_its_ports() -> None:
    m = FakeMachine(FakeMemory(128 * MIB))
    pc = install_pc_platform(m, ncpus=2)  # type: ignore[arg-type]
    d = m.dispatcher
    assert d.port_handler(0x510) == pc.fw_cfg.handle_io == d.port_handler(0x511)
    assert d.port_handler(0x70) == pc.cmos.handle_io == d.port_handler(0x71)
    assert d.port_handler(0x60) == pc.i8042.handle_io == d.port_handler(0x64)
    assert d.port_handler(0x92) == pc.port_a.handle_io
    assert d.port_handler(0x80) == pc.post.handle_io == d.port_handler(0xED)
    assert d.port_handler(0x8F) == pc.dma_pages.handle_io
    assert pc.debug_exit is not None and d.port_handler(0xF4) == pc.debug_exit.handle_io
    assert pc.testdev is None and d.port_handler(0xE0) is d.unhandled_io


def test_fw_cfg_describes_the_machine() -> None:
    m = FakeMachine(FakeMemory(128 * MIB))
    install_pc_platform(m, ncpus=4)  # type: ignore[arg-type]
    assert fw_read(m, F.SIGNATURE, 4) == b"QEMU"
    assert fw_read(m, F.RAM_SIZE, 8) == struct.pack("<Q", 128 * MIB)
    assert fw_read(m, F.NB_CPUS, 2) == b"\4\0"
    assert fw_read(m, F.MAX_CPUS, 2) == b"\4\0"
    d = fw_read(m, F.FILE_DIR, 4 + 64)
    assert d[:4] == b"\0\0\0\1" and d[12:20] == b"etc/e820"
    e820 = fw_read(m, 0x20, 40)
    assert struct.unpack("<QQIQQI", e820) == (0, 128 * MIB, 1, 0xFFFBC000, 0x4000, 2)


def test_cmos_through_the_ports() -> None:
    m = FakeMachine(FakeMemory(128 * MIB))
    install_pc_platform(m, ncpus=4)  # type: ignore[arg-type]

    def cmos(reg: int) -> int:
        m.io(0x70, 1, reg)
        return m.io(0x71, 1)[0]

    assert (cmos(0x34), cmos(0x35)) == (0x00, 0x07)
    assert cmos(0x5F) == 3


def test_resets_end_the_run_with_status_zero() -> None:
    m = FakeMachine(FakeMemory(16 * MIB))
    install_pc_platform(m, ncpus=1)  # type: ignore[arg-type]
    _, verdict = m.io(0x64, 1, 0xFE)
    assert isinstance(verdict, Stop) and verdict.status == 0
    _, verdict = m.io(0x92, 1, 0x01)
    assert isinstance(verdict, Stop) and verdict.status == 0


def test_post_ports() -> None:
    m = FakeMachine(FakeMemory(16 * MIB))
    pc = install_pc_platform(m, ncpus=1)  # type: ignore[arg-type]
    assert m.io(0x80, 1, 0x42)[1] is None
    assert m.io(0x80, 1)[0] & 0xFF == 0xFF
    assert m.io(0xED, 1)[0] & 0xFF == 0xFF
    assert pc.post.codes == [0x42]
    m.io(0x81, 2, 0x1234)
    assert m.io(0x82, 1)[0] == 0x12


def test_debug_exit_moves_or_goes() -> None:
    m = FakeMachine(FakeMemory(16 * MIB))
    install_pc_platform(m, ncpus=1, debug_exit=(0x501, 2))  # type: ignore[arg-type]
    value, verdict = m.io(0xF4, 1)
    assert verdict is None and value == 0xFFFFFFFF  # the old place is an empty bus now
    _, verdict = m.io(0x501, 1, 0x10)
    assert verdict == Stop(0x21, "guest wrote 0x10 to the debug-exit port")

    m = FakeMachine(FakeMemory(16 * MIB))
    pc = install_pc_platform(m, ncpus=1, debug_exit=None)  # type: ignore[arg-type]
    assert pc.debug_exit is None and m.io(0xF4, 1, 1)[1] is None


def test_tables_written_when_ram_covers_the_bios_area() -> None:
    m = FakeMachine(FakeMemory(16 * MIB))
    pc = install_pc_platform(m, ncpus=2)  # type: ignore[arg-type]
    assert pc.rsdp is not None and acpi.find_rsdp(m.memory.read) == pc.rsdp
    assert pc.mp_floating_pointer == 0xF0000 and m.memory.read(0xF0000, 4) == b"_MP_"

    small = FakeMachine(FakeMemory(512 * 1024))
    pc = install_pc_platform(small, ncpus=1)  # type: ignore[arg-type]
    assert pc.rsdp is None and pc.mp_floating_pointer is None
    assert "no ACPI or MP tables" in small.log.getvalue()


def test_testdev_opt_in() -> None:
    m = FakeMachine(FakeMemory(16 * MIB))
    pc = install_pc_platform(m, ncpus=1, testdev=True)  # type: ignore[arg-type]
    assert pc.testdev is not None
    m.io(0xE0, 4, 0xDEADBEEF)
    assert m.io(0xE0, 4)[0] == 0xDEADBEEF
