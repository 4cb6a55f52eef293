"""What the board table is asked for and what it hands back: the built-in devices a machine
wants, what those devices need from the board, and where the firmware tables went. Shared by
`vmm.board.table` and the PC platform (`vmm.board.pc`)."""

from __future__ import annotations

from collections.abc import Callable

from vmm import layout as L
from vmm.board.memory import GuestMemory
from vmm.devices.console import Console
from vmm.devices.notices import GuestNotices
from vmm.record import TupleRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Literal

    from vmm.devices.pci import RegionMapper

    Platform = Literal["minimal", "pc"]


class DeviceOptions(TupleRecord):
    platform: Platform = "minimal"
    ncpus: int = 1
    debug_exit: tuple[int, int] | None = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)  # (iobase, iosize)
    testdev: bool = False
    strict: bool = False  # malformed guest requests stop the run
    com1: bool = True  # False: no UART at 0x3f8 (QEMU's -serial none, or -nodefaults without -serial)
    pci_testdev: bool = False  # QEMU's pci-testdev at 00:02.0 (the pc platform's PCI bus)
    rtc_localtime: bool = False  # the RTC starts at the host's local time (QEMU's -rtc base=localtime)


class Peripherals(TupleRecord):
    """What the built-in devices need from the board that holds them."""

    memory: GuestMemory
    console: Console
    notices: GuestNotices
    irq_line: Callable[[int, int], None]  # (ISA IRQ, level)
    flush_page: Callable[[int], None]  # drop the host's mapping of a guest page (pc-testdev)
    bar_regions: RegionMapper  # maps PCI BARs on the buses where the guest points them


class FirmwareTables(TupleRecord):
    rsdp: int | None  # where the ACPI root pointer was written (None: RAM does not reach 1 MiB)
    mp_floating_pointer: int | None
    facs: int | None = None  # the FACS, where a kernel leaves its S3 waking vector
