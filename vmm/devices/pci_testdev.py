"""QEMU's `pci-testdev` (1b36:0005, class 00.ff.00), the PCI test device kvm-unit-tests drive.

BAR0 is 4 KiB of MMIO, BAR1 256 I/O ports; both hold the same registers, decoded one byte at a
time (a wider access is split into bytes, as QEMU's memory core does for this device):

  +0   test: a write ends the test that was running; n < 3 selects test n of the BAR's kind
  +1   width the test expects (1)     +4  offset it watches (u32)     +8  data it expects (u8)
  +12  count: matching writes the device saw (u32)                   +16 the test's name, NUL-ended

Reads return 0 while no test is selected, and from the end of the name on. Six tests, three per
kind, index i = kind * 3 + n, watching offset (0x800 for mmio, 0x80 for portio) + i:
- "no-eventfd": a 1-byte write of 0xfa to the offset is counted;
- "wildcard-eventfd", "datamatch-eventfd": QEMU registers a KVM ioeventfd on the offset (any data,
  or data 0xfa), 1 byte wide. The writes it matches are consumed by the eventfd before the device
  sees them, so they are never counted; pyvmm gives the same result by consuming the same writes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from vmm.devices.pci import Bar, PciFunction
from vmm.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from vmm.devices.protocol import MmioAccess, PortAccess

VENDOR, DEVICE, CLASS = 0x1B36, 0x0005, 0x00FF00
MMIO_SIZE, IO_SIZE = 0x1000, 0x100  # two of QEMU's IOTEST_MEMSIZE (2048) and IOTEST_IOSIZE (128)
TESTS_PER_KIND = 3
KINDS = ("mmio", "portio")
TEST_NAMES = ("no-eventfd", "wildcard-eventfd", "datamatch-eventfd")
DATAMATCH, NOMATCH = 0xFA, 0xCE
ACCESS_WIDTH = 1
HEADER = struct.Struct("<BB2xIB3xI")  # test, width, offset, data, count: 16 bytes before the name

# Where firmware would have left the BARs (SeaBIOS picks 0xc000 up for I/O); any free place will do
MMIO_ADDRESS, IO_ADDRESS = 0xFE000000, 0xC000


class IoTest(Record):
    """One of the device's tests; `count` is the writes it has seen."""

    __slots__ = ("name", "offset", "match_data", "eventfd", "data", "count")  # noqa: RUF023 (the repr's order)

    def __init__(self, name: str, offset: int, match_data: bool, eventfd: bool, data: int, count: int = 0) -> None:
        self.name = name
        self.offset = offset
        self.match_data = match_data  # count only writes of `data` with the expected width
        self.eventfd = eventfd  # an ioeventfd consumes the writes it matches
        self.data = data
        self.count = count

    def header(self) -> bytes:
        return HEADER.pack(0, ACCESS_WIDTH, self.offset, self.data, self.count) + self.name.encode() + b"\0"

    def eventfd_takes(self, offset: int, size: int, value: int) -> bool:
        return self.eventfd and offset == self.offset and size == ACCESS_WIDTH and (
            not self.match_data or value == self.data
        )


def make_tests() -> list[IoTest]:
    tests = []
    for i in range(len(KINDS) * TESTS_PER_KIND):
        kind, test = KINDS[i // TESTS_PER_KIND], TEST_NAMES[i % TESTS_PER_KIND]
        base = MMIO_SIZE // 2 if kind == "mmio" else IO_SIZE // 2
        match = test != "wildcard-eventfd"
        tests.append(IoTest(f"{kind}-{test}", base + i, match, test != "no-eventfd", DATAMATCH if match else NOMATCH))
    return tests


class PciTestdev(PciFunction):
    name = "pci-testdev"

    def __init__(self) -> None:
        self.tests = make_tests()
        self.current: int | None = None
        bars: Sequence[Bar] = (
            Bar("mmio", MMIO_SIZE, MMIO_ADDRESS, self.handle_mmio),
            Bar("io", IO_SIZE, IO_ADDRESS, self.handle_io),
        )
        # firmware has turned decoding on, as SeaBIOS does for every device with BARs
        super().__init__(VENDOR, DEVICE, CLASS, 0x00, bars, command=0x0003)

    # --- the registers, one byte at a time -----------------------------------------------------
    def write(self, kind: int, offset: int, size: int, value: int) -> None:
        test = self.tests[self.current] if self.current is not None else None
        if test is not None and test.eventfd_takes(offset, size, value):
            return  # consumed by the ioeventfd: the device never sees it
        for i in range(size):  # QEMU's memory core splits the access: the device sees 1-byte writes
            self.write_byte(kind, offset + i, (value >> (8 * i)) & 0xFF)

    def write_byte(self, kind: int, offset: int, byte: int) -> None:
        if offset == 0:
            self.current = None  # any write here ends the running test
            if byte < TESTS_PER_KIND:
                self.current = kind * TESTS_PER_KIND + byte
            return
        if self.current is None:
            return
        test = self.tests[self.current]
        if offset != test.offset:
            return
        if test.match_data and byte != test.data:
            return
        test.count = (test.count + 1) & 0xFFFFFFFF

    def read(self, offset: int, size: int) -> int:
        if self.current is None:
            return 0
        header = self.tests[self.current].header()
        return sum(
            (header[offset + i] if offset + i + 1 < len(header) else 0) << (8 * i) for i in range(size)
        )

    # --- the BARs' handlers ---------------------------------------------------------------------
    def handle_mmio(self, ex: MmioAccess) -> None:
        if ex.is_write:
            self.write(0, ex.offset, ex.length, ex.value)
        else:
            ex.value = self.read(ex.offset, ex.length)

    def handle_io(self, ex: PortAccess) -> None:
        if ex.is_write:
            self.write(1, ex.offset, ex.size, ex.value)
        else:
            ex.value = self.read(ex.offset, ex.size)
