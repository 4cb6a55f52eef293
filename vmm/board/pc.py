"""The PC platform's built-in devices and firmware view of memory: what `qemu-system-x86_64
-no-reboot` offers a kernel beside the minimal platform (see `vmm.board.table`), and the ACPI S3
wiring between the PM registers, the CMOS alarm and the vCPUs. Loaded only for a machine that has
the PC platform."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vmm import layout as L
from vmm.board.memory import GuestMemory
from vmm.board.options import DeviceOptions, FirmwareTables, Peripherals
from vmm.board.sleep import Suspend
from vmm.devices.acpi_pm import AcpiPm
from vmm.devices.cmos import Cmos
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
from vmm.devices.pci import PciHost, add_piix
from vmm.devices.pci_testdev import PciTestdev
from vmm.devices.post import DmaPageRegisters, PostPorts
from vmm.firmware import acpi, mptable
from vmm.kvm.vcpu import Vcpu

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import TextIO

    from vmm.devices.pci import RegionMapper
    from vmm.devices.protocol import Device

FOUR_GIB = 1 << 32


def pc_devices(opts: DeviceOptions, p: Peripherals) -> list[Device]:
    """The PC platform's devices beyond the minimal ones, in placement order."""
    below, above = ram_split(p.memory)
    return [
        make_fw_cfg(p.memory, opts.ncpus),
        Cmos(ram_below_4g=below, ram_above_4g=above, ncpus=opts.ncpus, localtime=opts.rtc_localtime),
        I8042(),
        PortA(),
        PostPorts(),
        DmaPageRegisters(),
        make_pci(opts, p.bar_regions),
        AcpiPm(irq_line=p.irq_line),
    ]


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


def write_firmware_tables(memory: GuestMemory, ncpus: int, log: TextIO) -> FirmwareTables:
    """The ACPI and MP tables in the BIOS area, as a PC kernel looks for them. Written before the
    image is loaded, so an image that covers the area wins."""
    if not memory.contains(acpi.TABLE_AREA[0], mptable.MP_AREA[1] - acpi.TABLE_AREA[0]):
        log.write("pyvmm: note: guest RAM ends below 1 MiB; no ACPI or MP tables written\n")
        return FirmwareTables(None, None)
    rsdp = acpi.write_tables(memory, ncpus)
    return FirmwareTables(rsdp, mptable.write_tables(memory, ncpus), acpi.facs_address(ncpus))


def firmware_and_sleep(
    memory: GuestMemory, vcpus: list[Vcpu], devices: Sequence[Device], log: TextIO, say: Callable[[str], None]
) -> tuple[FirmwareTables, Suspend | None]:
    """Write the firmware tables; where the guest can find a FACS, wire ACPI S3 (the PM
    registers' sleep request, the CMOS alarm that wakes it, the vCPUs it stops)."""
    firmware = write_firmware_tables(memory, len(vcpus), log)
    pm = next((d for d in devices if isinstance(d, AcpiPm)), None)
    cmos = next((d for d in devices if isinstance(d, Cmos)), None)
    if pm is None or cmos is None or firmware.facs is None:
        return firmware, None
    suspend = Suspend(vcpus, memory, memory.read_u32, pm, cmos, firmware.facs, say)
    pm.on_s3 = suspend
    return firmware, suspend
