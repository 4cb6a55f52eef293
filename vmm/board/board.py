"""`Board`: one VM's file descriptors, guest RAM and its memslots, the two address spaces and the
devices on them, built from a `BoardSpec` without running anything.

The board is the owner of these resources: it creates them, the runner and the participants use
them through it, and `close()` releases them. It knows nothing of threads or signals.
"""

from __future__ import annotations

import errno

from kvm_abi import constants as kc
from kvm_abi import ffi, libc
from vmm import layout as L
from vmm.board.bus import AddressSpace
from vmm.board.memory import GuestMemory
from vmm.board.options import DeviceOptions, FirmwareTables, Peripherals
from vmm.board.slots import RamSlots
from vmm.board.table import builtin_devices, place
from vmm.cpu.cpuid import cpuid_for_vcpu, shaped_cpu
from vmm.cpu.models import CpuRequest
from vmm.devices.console import Console
from vmm.devices.notices import GuestNotices
from vmm.devices.protocol import Region
from vmm.errors import ConfigError, KvmCallFailed
from vmm.kvm.system import Kvm
from vmm.kvm.vcpu import Vcpu
from vmm.record import TupleRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import TextIO

    from vmm.board.options import Platform
    from vmm.board.sleep import Suspend
    from vmm.devices.protocol import Device

MAX_VCPUS = 64
MMIO_LIMIT = 1 << 52  # physical addresses have at most 52 bits


class BoardSpec(TupleRecord):
    mem_size: int = L.DEFAULT_MEM
    smp: int = 1
    irqchip: bool = False  # in-kernel PIC, IOAPIC, LAPIC and PIT; implied by smp > 1
    pit: bool = True  # the in-kernel 8254 with the irqchip (QEMU's -machine pit=off drops it)
    pit_reinject: bool = True  # lost PIT ticks delivered late (QEMU kvm-pit lost_tick_policy=delay)
    cpu: CpuRequest = CpuRequest()  # -cpu: the model and its feature changes (immutable, so shared)
    devices: DeviceOptions = DeviceOptions()
    dirty_ring: bool = False  # the dirty log in KVM's per-vCPU dirty rings, not the per-slot bitmaps

    def check(self) -> None:
        if not isinstance(self.mem_size, int) or self.mem_size % L.PAGE_SIZE or self.mem_size < 0x10000:
            raise ConfigError(f"memory size {self.mem_size:#x} must be a multiple of 4 KiB and at least 64 KiB")
        if self.mem_size > L.KVM_IDENTITY_MAP_ADDR:
            raise ConfigError(f"memory size {self.mem_size:#x} is above the 4 GiB hole pyvmm keeps for KVM")
        if not 1 <= self.smp <= MAX_VCPUS:
            raise ConfigError(f"vCPU count {self.smp} must be between 1 and {MAX_VCPUS}")


RING_RESERVE = 1024  # entries KVM keeps back before it reports a ring full (64, and PML's 512)


def ring_entries_for(mem_size: int) -> int:
    """A dirty ring that holds every page of guest RAM, and KVM's reserve: a page is logged once
    until the ring is reset, so such a ring cannot overflow. Smaller ones do here: CPL-0 code runs
    in KVM's emulator, which logs its stores without passing the check that ends a run on a full
    ring (measured: 2048 pages written at CPL 0 into a 1024-entry ring overwrote entries)."""
    need = mem_size // L.PAGE_SIZE + RING_RESERVE
    return 1 << (need - 1).bit_length()


class BusRegions:
    """Puts PCI BAR regions on the buses as the guest moves them (vmm.devices.pci.RegionMapper).
    A BAR pointed over another device is left unmapped, and said once, as a guest's own mistake."""

    def __init__(self, ports: AddressSpace, mmio: AddressSpace, notices: GuestNotices) -> None:
        self.ports, self.mmio, self.notices = ports, mmio, notices

    def _bus(self, region: Region) -> AddressSpace:
        return self.ports if region.space == "io" else self.mmio

    def map(self, region: Region, owner: str) -> bool:
        try:
            self._bus(region).insert(region.start, region.size, region.handler, name=f"{owner} BAR")
        except ConfigError as e:
            self.notices.say(f"{owner}: BAR left unmapped: {e}")
            return False
        return True

    def unmap(self, region: Region) -> None:
        self._bus(region).remove(region.start, region.size)


class Board:
    def __init__(self, spec: BoardSpec, *, console: Console, log: TextIO, kvm: Kvm | None = None) -> None:
        spec.check()
        self.spec = spec
        self.log = log
        self.console = console
        self.notices = GuestNotices(log)
        self._owns_kvm = kvm is None
        self.kvm = kvm if kvm is not None else Kvm()
        self.memory = GuestMemory()
        self.vcpus: list[Vcpu] = []
        self.devices: list[Device] = []
        self.firmware = FirmwareTables(None, None)
        self.suspend: Suspend | None = None  # ACPI S3 (the pc platform)
        try:
            self._build()
        except BaseException:
            self.close()  # no file descriptor or mapping outlives a board that failed to build
            raise

    def _build(self) -> None:
        spec = self.spec
        self.vm = self.kvm.create_vm()
        if spec.dirty_ring:  # before any vCPU, as KVM requires
            self.vm.enable_dirty_ring(ring_entries_for(spec.mem_size))
        self.vm.set_tss_addr()
        self.vm.set_identity_map_addr()
        self.slots = RamSlots(self.vm, self.memory)
        self.slots.add_region(self.memory.add_ram(0, spec.mem_size))
        # APs start by INIT/SIPI through the in-kernel LAPIC, so SMP implies the irqchip
        self.irqchip = spec.irqchip or spec.smp > 1
        if self.irqchip:  # before any vCPU exists, as KVM requires; APs then wait for INIT/SIPI
            self.vm.create_irqchip()
            if spec.pit:
                self.vm.create_pit2()
                if not spec.pit_reinject:
                    self.vm.set_pit_reinject(False)
        self.cpu = shaped_cpu(self.kvm.supported_cpuid(), spec.cpu)
        for line in self.cpu.warnings:
            self.log.write(f"pyvmm: {line}\n")
        for i in range(spec.smp):
            vcpu = self.vm.create_vcpu(i)
            vcpu.set_cpuid(cpuid_for_vcpu(self.cpu, i, spec.smp))
            self.vcpus.append(vcpu)
        self.ports = AddressSpace("port", 0x10000, direct_index=True)
        self.mmio = AddressSpace("address", MMIO_LIMIT, direct_index=False)
        opts = spec.devices._replace(ncpus=spec.smp)
        bars = BusRegions(self.ports, self.mmio, self.notices)
        peripherals = Peripherals(self.memory, self.console, self.notices, self.irq_line, self.flush_page, bars)
        for device in builtin_devices(opts, peripherals):
            self.place(device)
        if opts.platform == "pc":
            from vmm.board.pc import firmware_and_sleep  # only a PC machine loads its platform

            self.firmware, self.suspend = firmware_and_sleep(self.memory, self.vcpus, self.devices, self.log,
                                                             self.notices.say)  # fmt: skip

    @property
    def platform(self) -> Platform:
        return self.spec.devices.platform

    @property
    def mem_size(self) -> int:
        return self.spec.mem_size

    # --- devices -----------------------------------------------------------------------------
    def place(self, device: Device, *, replace: bool = False) -> None:
        place(device, self.ports, self.mmio, self.memory, replace=replace)
        self.devices.append(device)

    def device(self, kind: type) -> Device | None:
        """The first placed device of class `kind`."""
        return next((d for d in self.devices if isinstance(d, kind)), None)

    def irq_line(self, irq: int, level: int) -> None:
        """Drive an ISA interrupt line of the in-kernel irqchip; a board without one notes it once."""
        if self.irqchip:
            try:
                self.vm.irq_line(irq, level)
                return
            except KvmCallFailed as e:
                if e.errno != errno.ENXIO:
                    raise
        self.notices.say(f"IRQ {irq} set to {level}, but this VM has no irqchip")

    def flush_page(self, gpa: int) -> None:
        """Drop the host's page-table entries for a guest page, as QEMU's pc-testdev does, so
        KVM's translations of it are zapped and the guest's next access faults in afresh. The
        data stays in the memfd, so the page is never inaccessible to the monitor (an mprotect
        pair would leave a window where the monitor's own access to the page faults)."""
        page = gpa & ~(L.PAGE_SIZE - 1)
        if not self.memory.contains(page, L.PAGE_SIZE):
            return
        libc.madvise(ffi.cast("void *", self.memory.host_address(page)), L.PAGE_SIZE, kc.MADV_DONTNEED)

    # --- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        if hasattr(self, "vm"):
            self.vm.close()  # the vCPUs with it
        self.memory.close()
        if self._owns_kvm:
            self.kvm.close()
