"""The board table: which built-in devices a machine has, where they sit, and the firmware tables
written into RAM. Every built-in device is placed here and nowhere else.

Two platforms:
- "minimal": what every guest gets: COM1, the 0xe9 debug console, the ucall port and (unless
  removed) isa-debug-exit at 0xf4. Enough for flat binaries.
- "pc": the above plus what `qemu-system-x86_64 -no-reboot` offers a kernel that boots without a
  BIOS's help: fw_cfg, the CMOS clock with the memory-size bytes filled in, the i8042 and port
  0x92 reset paths, the POST/delay ports, and ACPI (RSDP, RSDT, MADT) and MP tables in the BIOS
  area. The interrupt controllers and the PIT are KVM's in-kernel ones (see `Board`).
`testdev` adds QEMU's pc-testdev to either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

from vmm import layout as L
from vmm.board.bus import AddressSpace
from vmm.board.memory import GuestMemory
from vmm.devices.acpi_pm import AcpiPm
from vmm.devices.cmos import Cmos
from vmm.devices.console import Console
from vmm.devices.debugcon import DebugConsole
from vmm.devices.fw_cfg import (
    BOOT_MENU,
    E820_RAM,
    E820_RESERVED,
    IRQ0_OVERRIDE,
    MAX_CPUS,
    NB_CPUS,
    NOGRAPHIC,
    NUMA,
    RAM_SIZE,
    FwCfg,
    e820_table,
)
from vmm.devices.i8042 import I8042, PortA
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.devices.notices import GuestNotices
from vmm.devices.pci import PciHost, RegionMapper, add_piix
from vmm.devices.pci_testdev import PciTestdev
from vmm.devices.post import DmaPageRegisters, PostPorts
from vmm.devices.protocol import Device
from vmm.devices.testdev import PcTestdev
from vmm.devices.uart import Uart16550
from vmm.devices.ucall import UcallPort
from vmm.errors import ConfigError
from vmm.firmware import acpi, mptable

Platform = Literal["minimal", "pc"]
FOUR_GIB = 1 << 32


@dataclass(frozen=True)
class DeviceOptions:
    platform: Platform = "minimal"
    ncpus: int = 1
    debug_exit: tuple[int, int] | None = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)  # (iobase, iosize)
    testdev: bool = False
    strict: bool = False  # malformed guest requests stop the run
    com1: bool = True  # False: no UART at 0x3f8 (QEMU's -serial none, or -nodefaults without -serial)
    pci_testdev: bool = False  # QEMU's pci-testdev at 00:02.0 (the pc platform's PCI bus)
    rtc_localtime: bool = False  # the RTC starts at the host's local time (QEMU's -rtc base=localtime)


@dataclass(frozen=True)
class Peripherals:
    """What the built-in devices need from the board that holds them."""

    memory: GuestMemory
    console: Console
    notices: GuestNotices
    irq_line: Callable[[int, int], None]  # (ISA IRQ, level)
    flush_page: Callable[[int], None]  # drop the host's mapping of a guest page (pc-testdev)
    bar_regions: RegionMapper  # maps PCI BARs on the buses where the guest points them


def builtin_devices(opts: DeviceOptions, p: Peripherals) -> list[Device]:
    """Every built-in device of a machine with `opts`, in placement order."""
    devices: list[Device] = [Uart16550(p.console, L.COM1_PORT)] if opts.com1 else []
    devices += [
        DebugConsole(p.console, L.DEBUGCON_PORT),
        UcallPort(p.memory, p.console, p.notices, strict=opts.strict, port=L.UCALL_PORT),
    ]
    if opts.debug_exit is not None:
        devices.append(IsaDebugExit(*opts.debug_exit))
    if opts.platform == "pc":
        below, above = ram_split(p.memory)
        devices += [
            make_fw_cfg(p.memory, opts.ncpus),
            Cmos(ram_below_4g=below, ram_above_4g=above, ncpus=opts.ncpus, localtime=opts.rtc_localtime),
            I8042(),
            PortA(),
            PostPorts(),
            DmaPageRegisters(),
            make_pci(opts, p.bar_regions),
            AcpiPm(),
        ]
    if opts.testdev:
        devices.append(PcTestdev(p.irq_line, p.flush_page))
    return devices


# Where pci-testdev sits: QEMU's pc machine has the PIIX3 functions at 00:01.x, so with
# -nodefaults (no VGA, no NIC) the first -device lands at 00:02.0.
PCI_TESTDEV_SLOT = 2


def make_pci(opts: DeviceOptions, bar_regions: RegionMapper) -> PciHost:
    host = PciHost()
    add_piix(host, L.PM_BASE)
    if opts.pci_testdev:
        host.add(PCI_TESTDEV_SLOT, PciTestdev())
    host.attach(bar_regions)
    return host


def place(
    device: Device, ports: AddressSpace, mmio: AddressSpace, memory: GuestMemory, *, replace: bool = False
) -> None:
    """Put every region of `device` on its bus. MMIO inside RAM is refused: KVM would never
    exit for it, so the device would silently never be reached."""
    placed: list[tuple[AddressSpace, int, int]] = []
    try:
        for r in device.regions():
            if r.space == "mmio" and any(m.gpa < r.start + r.size and r.start < m.end for m in memory.regions):
                raise ConfigError(
                    f"{device.name}: MMIO {r.start:#x}-{r.start + r.size - 1:#x} lies inside guest RAM; use less RAM"
                )
            bus = ports if r.space == "io" else mmio
            bus.insert(r.start, r.size, r.handler, name=device.name, base=r.base, replace=replace)
            placed.append((bus, r.start, r.size))
    except ConfigError:
        for bus, start, size in placed:  # all of a device or none of it
            bus.remove(start, size)
        raise


def find(devices: Sequence[Device], kind: type) -> Device | None:
    return next((d for d in devices if isinstance(d, kind)), None)


# --- the PC platform's firmware view of memory -----------------------------------------------
def ram_split(memory: GuestMemory) -> tuple[int, int]:
    """Bytes of RAM below and above 4 GiB."""
    below = above = 0
    for r in memory.regions:
        below += max(min(r.end, FOUR_GIB) - r.gpa, 0)
        above += max(r.end - max(r.gpa, FOUR_GIB), 0)
    return below, above


def e820_entries(memory: GuestMemory) -> list[tuple[int, int, int]]:
    """The memory map QEMU hands SeaBIOS: the RAM as it is, and the pages KVM keeps for itself."""
    entries = [(r.gpa, r.size, E820_RAM) for r in memory.regions]
    kvm_lo = min(L.KVM_IDENTITY_MAP_ADDR, L.KVM_TSS_ADDR)
    kvm_hi = max(L.KVM_IDENTITY_MAP_ADDR + L.PAGE_SIZE, L.KVM_TSS_ADDR + 3 * L.PAGE_SIZE)
    entries.append((kvm_lo, kvm_hi - kvm_lo, E820_RESERVED))
    return entries


def make_fw_cfg(memory: GuestMemory, ncpus: int, max_cpus: int | None = None) -> FwCfg:
    """fw_cfg with the items QEMU's pc machine provides (no -kernel, no NUMA nodes)."""
    below, above = ram_split(memory)
    limit = ncpus if max_cpus is None else max_cpus
    fw = FwCfg()
    fw.set_u64(RAM_SIZE, below + above)
    fw.set_u16(NOGRAPHIC, 1)
    fw.set_u16(NB_CPUS, ncpus)
    # on x86 this is really the APIC ID limit, which for IDs 0..n-1 is n
    fw.set_u16(MAX_CPUS, limit)
    fw.set_u16(BOOT_MENU, 0)
    fw.set_bytes(NUMA, bytes(8 * (1 + limit)))  # node count 0, then one zero per CPU
    fw.set_u32(IRQ0_OVERRIDE, 1)
    fw.add_file("etc/e820", e820_table(e820_entries(memory)))
    return fw


@dataclass(frozen=True)
class FirmwareTables:
    rsdp: int | None  # where the ACPI root pointer was written (None: RAM does not reach 1 MiB)
    mp_floating_pointer: int | None
    facs: int | None = None  # the FACS, where a kernel leaves its S3 waking vector


def write_firmware_tables(memory: GuestMemory, ncpus: int, log: TextIO) -> FirmwareTables:
    """The ACPI and MP tables in the BIOS area, as a PC kernel looks for them. Written before the
    image is loaded, so an image that covers the area wins."""
    if not memory.contains(acpi.TABLE_AREA[0], mptable.MP_AREA[1] - acpi.TABLE_AREA[0]):
        log.write("pyvmm: note: guest RAM ends below 1 MiB; no ACPI or MP tables written\n")
        return FirmwareTables(None, None)
    rsdp = acpi.write_tables(memory, ncpus)
    return FirmwareTables(rsdp, mptable.write_tables(memory, ncpus), acpi.facs_address(ncpus))
