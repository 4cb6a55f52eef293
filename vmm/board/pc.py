"""Put the PC platform together on a machine.

    install_pc_platform(machine, ncpus=2)

gives the guest what `qemu-system-x86_64 -no-reboot` offers a kernel that boots without a BIOS's
help: fw_cfg, the CMOS clock with the memory-size bytes filled in, the i8042 and port 0x92 reset
paths, the POST/delay ports, ACPI (RSDP, RSDT, MADT) and MP tables in the BIOS area, and, on
request, the pc-testdev. The interrupt controllers and the PIT are KVM's in-kernel ones, which the
machine creates; nothing here touches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmm import layout as L
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
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.devices.post import DmaPageRegisters, PostPorts
from vmm.devices.testdev import PcTestdev, host_flush_page, vm_irq_line
from vmm.firmware import acpi, mptable

if TYPE_CHECKING:
    from vmm.devices.host import PlatformHost

FOUR_GIB = 1 << 32


@dataclass
class PcPlatform:
    """The installed devices, for handlers and tests that want to look at or steer them."""

    fw_cfg: FwCfg
    cmos: Cmos
    i8042: I8042
    port_a: PortA
    post: PostPorts
    dma_pages: DmaPageRegisters
    debug_exit: IsaDebugExit | None
    testdev: PcTestdev | None
    rsdp: int | None  # where the ACPI root pointer was written (None: RAM does not reach 1 MiB)
    mp_floating_pointer: int | None


def ram_split(machine: PlatformHost) -> tuple[int, int]:
    """Bytes of RAM below and above 4 GiB."""
    below = above = 0
    for r in machine.memory.regions:
        below += max(min(r.end, FOUR_GIB) - r.gpa, 0)
        above += max(r.end - max(r.gpa, FOUR_GIB), 0)
    return below, above


def e820_entries(machine: PlatformHost) -> list[tuple[int, int, int]]:
    """The memory map QEMU hands SeaBIOS: the RAM as it is, and the pages KVM keeps for itself."""
    entries = [(r.gpa, r.size, E820_RAM) for r in machine.memory.regions]
    kvm_lo = min(L.KVM_IDENTITY_MAP_ADDR, L.KVM_TSS_ADDR)
    kvm_hi = max(L.KVM_IDENTITY_MAP_ADDR + L.PAGE_SIZE, L.KVM_TSS_ADDR + 3 * L.PAGE_SIZE)
    entries.append((kvm_lo, kvm_hi - kvm_lo, E820_RESERVED))
    return entries


def make_fw_cfg(machine: PlatformHost, ncpus: int, max_cpus: int | None = None) -> FwCfg:
    """fw_cfg with the items QEMU's pc machine provides (no -kernel, no NUMA nodes)."""
    below, above = ram_split(machine)
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
    fw.add_file("etc/e820", e820_table(e820_entries(machine)))
    return fw


def install_pc_platform(
    machine: PlatformHost,
    *,
    ncpus: int,
    debug_exit: tuple[int, int] | None = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE),
    testdev: bool = False,
    acpi_tables: bool = True,
    mp_table: bool = True,
    max_cpus: int | None = None,
) -> PcPlatform:
    """Install every PC device on `machine` and write the firmware tables into its RAM.

    `debug_exit` is the isa-debug-exit (iobase, iosize) as given to QEMU's `-device isa-debug-exit`;
    None removes it (QEMU's pc has none by default). The tables are written now: install before
    loading an image that is meant to replace them, or after one that uses the BIOS area.
    """
    if ncpus < 1:
        raise ValueError(f"a PC needs at least one CPU, not {ncpus}")
    below, above = ram_split(machine)

    fw = make_fw_cfg(machine, ncpus, max_cpus)
    fw.install(machine)
    cmos = Cmos(ram_below_4g=below, ram_above_4g=above, ncpus=ncpus)
    cmos.install(machine)
    kbc = I8042()
    kbc.install(machine)
    port_a = PortA()
    port_a.install(machine)
    post = PostPorts()
    post.install(machine)
    pages = DmaPageRegisters()
    pages.install(machine)

    dx: IsaDebugExit | None = None
    default_dx = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)
    if debug_exit != default_dx:
        # the machine put one at the default place; take it away before placing the requested one
        machine.dispatcher.remove_io(*default_dx)
    if debug_exit is not None:
        dx = IsaDebugExit()
        machine.on_io(debug_exit[0], debug_exit[1], dx.handle_io)

    td: PcTestdev | None = None
    if testdev:
        td = PcTestdev(vm_irq_line(machine), host_flush_page(machine))
        td.install(machine)

    rsdp = mp = None
    if machine.memory.contains(acpi.TABLE_AREA[0], mptable.MP_AREA[1] - acpi.TABLE_AREA[0]):
        if acpi_tables:
            rsdp = acpi.write_tables(machine.memory, ncpus)
        if mp_table:
            mp = mptable.write_tables(machine.memory, ncpus)
    elif acpi_tables or mp_table:
        machine.log.write("pyvmm: note: guest RAM ends below 1 MiB; no ACPI or MP tables written\n")

    return PcPlatform(fw, cmos, kbc, port_a, post, pages, dx, td, rsdp, mp)
