"""PCI bus 0 as QEMU's `pc` machine shows it to a test kernel: the i440FX host bridge, configuration
mechanism #1 at ports 0xcf8 (address) and 0xcfc-0xcff (data), and the functions placed on it.

Configuration mechanism #1: a 32-bit write to 0xcf8 latches an address (bit 31 enable, bus 23:16,
device 15:11, function 10:8, register 7:2); an access of any width at 0xcfc + n then reads or
writes register + n of that function. A function nobody placed reads all-ones (vendor 0xffff), as
an empty slot does; so does the data port while bit 31 is clear. Accesses to 0xcf8 other than a
32-bit one at 0xcf8 itself do nothing (reads all-ones), as in QEMU.

Each function has a 256-byte type-0 configuration header. Its BARs size as hardware does (a write
of all-ones reads back the size mask) and are already assigned, as firmware leaves them; the
function's regions are mapped on the buses at the BARs' addresses while the command register's I/O
or memory bit is set, and follow the BARs when the guest moves them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from vmm.devices.protocol import Region
from vmm.record import TupleRecord
from vmm.verdict import Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Literal, Protocol

    from vmm.devices.protocol import PortAccess

CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC
ENABLE = 1 << 31
ALL_ONES = 0xFFFFFFFF

# header offsets
VENDOR_ID, DEVICE_ID, COMMAND, STATUS = 0x00, 0x02, 0x04, 0x06
REVISION, CLASS_PROG, HEADER_TYPE = 0x08, 0x09, 0x0E
BAR0, BAR_COUNT = 0x10, 6
SUBSYSTEM_VENDOR, SUBSYSTEM_ID = 0x2C, 0x2E
INTERRUPT_LINE, INTERRUPT_PIN = 0x3C, 0x3D
COMMAND_IO, COMMAND_MEMORY = 1 << 0, 1 << 1
BAR_IO = 1

# QEMU's subsystem ids for its PC devices (Red Hat / QEMU)
QEMU_SUBSYSTEM_VENDOR, QEMU_SUBSYSTEM = 0x1AF4, 0x1100


class Bar(TupleRecord):
    kind: Literal["io", "mmio"]
    size: int  # a power of two
    address: int  # where it is assigned at start
    handler: Callable[..., Verdict]  # gets the access with `offset` from the BAR's base


if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time

    class RegionMapper(Protocol):
        """How a function's BAR regions reach the buses (the board provides it)."""

        def map(self, region: Region, owner: str) -> bool: ...  # False: refused (overlap); left unmapped
        def unmap(self, region: Region) -> None: ...


class PciFunction:
    """A type-0 configuration header with its BARs; subclasses give the ids and the BARs."""

    name = "pci-function"

    def __init__(
        self,
        vendor: int,
        device: int,
        class_code: int,  # class << 16 | subclass << 8 | prog-if
        revision: int,
        bars: Sequence[Bar] = (),
        command: int = 0,
        header_type: int = 0,  # bit 7: the device has several functions
    ) -> None:
        self.config = bytearray(256)
        struct.pack_into("<HH", self.config, VENDOR_ID, vendor, device)
        self.config[REVISION] = revision
        self.config[HEADER_TYPE] = header_type
        self.config[CLASS_PROG : CLASS_PROG + 3] = class_code.to_bytes(3, "little")
        struct.pack_into("<HH", self.config, SUBSYSTEM_VENDOR, QEMU_SUBSYSTEM_VENDOR, QEMU_SUBSYSTEM)
        self.bars: list[Bar | None] = [*bars, *([None] * (BAR_COUNT - len(bars)))]
        for i, bar in enumerate(self.bars):
            if bar is not None:
                self._set_bar(i, bar.address)
        struct.pack_into("<H", self.config, COMMAND, command)
        self.mapper: RegionMapper | None = None
        self._mapped: dict[int, Region] = {}

    # --- BARs --------------------------------------------------------------------------------
    def _set_bar(self, index: int, value: int) -> None:
        bar = self.bars[index]
        off = BAR0 + 4 * index
        if bar is None:
            struct.pack_into("<I", self.config, off, 0)  # not implemented: reads 0, ignores writes
            return
        if bar.kind == "io":
            raw = (value & ~(bar.size - 1) & 0xFFFFFFFC) | BAR_IO
        else:
            raw = value & ~(bar.size - 1) & 0xFFFFFFF0  # 32-bit, not prefetchable
        struct.pack_into("<I", self.config, off, raw & ALL_ONES)

    def bar_address(self, index: int) -> int:
        raw = struct.unpack_from("<I", self.config, BAR0 + 4 * index)[0]
        bar = self.bars[index]
        return raw & ~3 if bar is not None and bar.kind == "io" else raw & ~0xF

    def _decoding(self, bar: Bar) -> bool:
        command = struct.unpack_from("<H", self.config, COMMAND)[0]
        return bool(command & (COMMAND_IO if bar.kind == "io" else COMMAND_MEMORY))

    def attach(self, mapper: RegionMapper) -> None:
        self.mapper = mapper
        self.update_mappings()

    def update_mappings(self) -> None:
        """Map each BAR where it points while its decoding is on; an address that wraps or leaves
        the space (a BAR holding its size mask) maps nothing, as on QEMU's bus."""
        if self.mapper is None:
            return
        for i, bar in enumerate(self.bars):
            if bar is None:
                continue
            address = self.bar_address(i)
            limit = 0x10000 if bar.kind == "io" else 1 << 32
            wanted = (
                Region(bar.kind, address, bar.size, bar.handler)
                if self._decoding(bar) and address != 0 and address + bar.size < limit
                else None
            )
            current = self._mapped.get(i)
            if current == wanted:
                continue
            if current is not None:
                self.mapper.unmap(current)
                del self._mapped[i]
            if wanted is not None and self.mapper.map(wanted, self.name):
                self._mapped[i] = wanted

    # --- configuration space ------------------------------------------------------------------
    def config_read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.config[offset : offset + size], "little")

    def config_write(self, offset: int, size: int, value: int) -> None:
        touched_bars = False
        for i in range(size):
            reg = offset + i
            byte = (value >> (8 * i)) & 0xFF
            if reg in (COMMAND, COMMAND + 1) or reg == INTERRUPT_LINE:
                self.config[reg] = byte
            elif BAR0 <= reg < BAR0 + 4 * BAR_COUNT:
                self.config[reg] = byte
                touched_bars = True
            # everything else is read-only here (ids, class, header type, pin, status)
        if touched_bars:
            for i in range(BAR_COUNT):
                self._set_bar(i, struct.unpack_from("<I", self.config, BAR0 + 4 * i)[0])
        if touched_bars or offset <= COMMAND < offset + size:
            self.update_mappings()


class I440fxHostBridge(PciFunction):
    """00:00.0 of QEMU's pc machine: 8086:1237 rev 2, class 06.00.00."""

    name = "i440FX"

    def __init__(self) -> None:
        super().__init__(0x8086, 0x1237, 0x060000, 0x02)


# QEMU's pc machine has the PIIX3 south bridge at 00:01 (function 0 ISA bridge, 1 IDE) and the
# PIIX4 power management function at 00:01.3, whatever -nodefaults says: their headers as QEMU 7.2
# shows them. pyvmm emulates no IDE and no SMBus: those functions' BARs are not implemented.
PIIX_SLOT = 1
PMBA, PMREGMISC = 0x40, 0x80  # PIIX4 PM: the PM I/O base (bit 0: I/O space) and its enable bit


class Piix3IsaBridge(PciFunction):
    """00:01.0: 8086:7000 rev 0, class 06.01.00, multi-function."""

    name = "PIIX3"

    def __init__(self) -> None:
        super().__init__(0x8086, 0x7000, 0x060100, 0x00, header_type=0x80)


class Piix3Ide(PciFunction):
    """00:01.1: 8086:7010 rev 0, class 01.01.80 (an ISA-compatible IDE controller that can bus-master)."""

    name = "piix3-ide"

    def __init__(self) -> None:
        super().__init__(0x8086, 0x7010, 0x010180, 0x00)


class Piix4Pm(PciFunction):
    """00:01.3: 8086:7113 rev 3, class 06.80.00, with PMBA pointing at the ACPI PM block (the
    FADT's PM1a event block) and its decoding on, as firmware leaves it."""

    name = "piix4-pm"

    def __init__(self, pm_base: int) -> None:
        super().__init__(0x8086, 0x7113, 0x068000, 0x03)
        struct.pack_into("<I", self.config, PMBA, pm_base | 1)
        self.config[PMREGMISC] = 1


def add_piix(host: PciHost, pm_base: int) -> None:
    host.add(PIIX_SLOT, Piix3IsaBridge(), 0)
    host.add(PIIX_SLOT, Piix3Ide(), 1)
    host.add(PIIX_SLOT, Piix4Pm(pm_base), 3)


class PciHost:
    """The configuration mechanism and bus 0's functions (devfn -> function)."""

    name = "i440FX-pcihost"

    def __init__(self) -> None:
        self.address = 0
        self.functions: dict[int, PciFunction] = {0: I440fxHostBridge()}

    def add(self, slot: int, function: PciFunction, fn: int = 0) -> None:
        devfn = slot << 3 | fn
        if devfn in self.functions:
            raise ValueError(f"PCI 00:{slot:02x}.{fn} is taken")
        self.functions[devfn] = function

    def attach(self, mapper: RegionMapper) -> None:
        for function in self.functions.values():
            function.attach(mapper)

    def _selected(self) -> tuple[PciFunction | None, int]:
        if not self.address & ENABLE or (self.address >> 16) & 0xFF != 0:
            return None, 0
        return self.functions.get((self.address >> 8) & 0xFF), self.address & 0xFC

    def handle_address(self, ex: PortAccess) -> None:
        if ex.offset != 0 or ex.size != 4:
            if not ex.is_write:
                ex.value = (1 << (8 * ex.size)) - 1
            return
        if ex.is_write:
            self.address = ex.value & ALL_ONES
        else:
            ex.value = self.address

    def handle_data(self, ex: PortAccess) -> None:
        function, register = self._selected()
        offset = register + ex.offset
        size = min(ex.size, 4 - ex.offset)
        if function is None:
            if not ex.is_write:
                ex.value = (1 << (8 * ex.size)) - 1
            return
        if ex.is_write:
            function.config_write(offset, size, ex.value)
        else:
            ex.value = function.config_read(offset, size)

    def regions(self) -> Sequence[Region]:
        return (
            Region("io", CONFIG_ADDRESS, 4, self.handle_address),
            Region("io", CONFIG_DATA, 4, self.handle_data),
        )
