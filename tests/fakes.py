"""Stand-ins for unit tests that need no KVM.

- `FakeIo` / `FakeMmio`: a port or MMIO access as a device handler sees it (they satisfy the
  `PortAccess` / `MmioAccess` protocols of vmm.devices.protocol, so they type-check as real ones).
- `SyntheticVcpu` and the `*_exit` builders: real exit views (vmm.kvm.exits) over a kvm_run page
  in plain memory, filled the way KVM fills it, for the exit policy and the SPP engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvm_abi import constants as kc
from kvm_abi import exits as ke
from kvm_abi import ffi
from kvm_abi.constants import KVM_PIO_PAGE_OFFSET
from vmm.board.bus import AddressSpace
from vmm.kvm.exits import Exit, IoExit, MmioExit, make_run, make_view
from vmm.runner.policy import ExitPolicy

PIO_DATA = KVM_PIO_PAGE_OFFSET * 4096


@dataclass
class FakeIo:
    """What a port handler reads from an IoExit, and `value` for what it writes back. `base` is
    where the device sits, so `offset` is what the port bus would hand over."""

    port: int
    size: int
    is_write: bool
    value: int = 0
    base: int | None = None
    vcpu_index: int = 0

    @property
    def offset(self) -> int:
        return self.port - (self.port if self.base is None else self.base)

    @offset.setter
    def offset(self, v: int) -> None:
        self.base = self.port - v


@dataclass
class FakeMmio:
    """What an MMIO handler reads from an MmioExit, and `data` for what it writes back."""

    address: int
    length: int
    is_write: bool
    data: bytes = b""
    base: int | None = None

    @property
    def offset(self) -> int:
        return self.address - (self.address if self.base is None else self.base)

    @offset.setter
    def offset(self, v: int) -> None:
        self.base = self.address - v

    @property
    def value(self) -> int:
        return int.from_bytes(self.data, "little")

    @value.setter
    def value(self, v: int) -> None:
        self.data = (v & ((1 << (8 * self.length)) - 1)).to_bytes(self.length, "little")


@dataclass
class SyntheticVcpu:
    """A vCPU whose kvm_run page is plain memory: what exit views and handlers read. Registers
    live in the page's sync-regs area, as KVM mirrors them."""

    index: int = 0
    page: Any = field(default_factory=lambda: ffi.new("char[]", (KVM_PIO_PAGE_OFFSET + 1) * 4096))
    sync_regs: bool = True
    exits: int = 0
    sregs: Any = field(default_factory=lambda: ffi.new("struct kvm_sregs *"))
    events: Any = field(default_factory=lambda: ffi.new("struct kvm_vcpu_events *"))

    def __post_init__(self) -> None:
        self.kvm_run.kvm_valid_regs = kc.KVM_SYNC_X86_REGS

    @property
    def kvm_run(self) -> Any:
        return ffi.cast("struct kvm_run *", self.page)

    def synced_rip(self) -> int | None:
        return int(self.kvm_run.s.regs.regs.rip)

    def get_regs(self) -> Any:
        regs = ffi.new("struct kvm_regs *")
        ffi.memmove(regs, ffi.addressof(self.kvm_run.s.regs.regs), ffi.sizeof("struct kvm_regs"))
        return regs

    def set_regs(self, regs: Any) -> None:
        ffi.memmove(ffi.addressof(self.kvm_run.s.regs.regs), regs, ffi.sizeof("struct kvm_regs"))

    def get_sregs(self) -> Any:
        return self.sregs

    def set_sregs(self, sregs: Any) -> None:
        self.sregs = sregs

    def get_vcpu_events(self) -> Any:
        return self.events

    def set_vcpu_events(self, ev: Any) -> None:
        self.events = ev

    def view(self, reason: int) -> Exit:
        """The exit view of `reason` over this page, as Vcpu.run returns it (fresh views each time)."""
        run = self.kvm_run
        return stand_in_run(self, run, [make_view(self, run, r) for r in range(64)], lambda: reason)()


def stand_in_run(vcpu: Any, run: Any, views: list[Exit], reason: Callable[[], int]) -> Callable[[], Exit]:
    """The run function `make_run` builds over `run`, entered through a stand-in for KVM_RUN that
    leaves the page as the test wrote it and sets the exit reason to `reason()`."""

    def enter() -> int:
        run.exit_reason = reason()
        return 0

    def failed() -> Exit:
        raise AssertionError("the stand-in KVM_RUN never fails")

    return make_run(vcpu, run, views, enter, failed)


def io_exit(
    vcpu: SyntheticVcpu, port: int, size: int = 1, *, write: bool = True, value: int = 0, count: int = 1
) -> IoExit:
    """An IoExit for `port`; `value` fills every element of a write."""
    run = vcpu.kvm_run
    run.io.direction = ke.KVM_EXIT_IO_OUT if write else ke.KVM_EXIT_IO_IN
    run.io.size, run.io.port, run.io.count, run.io.data_offset = size, port, count, PIO_DATA
    data = ffi.cast({1: "uint8_t *", 2: "uint16_t *", 4: "uint32_t *"}[size], vcpu.page + PIO_DATA)
    for i in range(count):
        data[i] = value
    ex = vcpu.view(ke.KVM_EXIT_IO)
    assert isinstance(ex, IoExit)
    return ex


def mmio_exit(vcpu: SyntheticVcpu, address: int, length: int, *, write: bool, data: bytes = b"") -> MmioExit:
    run = vcpu.kvm_run
    run.mmio.phys_addr, run.mmio.len, run.mmio.is_write = address, length, 1 if write else 0
    ffi.memmove(run.mmio.data, data.ljust(8, b"\0"), 8)
    ex = vcpu.view(ke.KVM_EXIT_MMIO)
    assert isinstance(ex, MmioExit)
    return ex


def port_access(device: Any, port: int, size: int, value: int | None = None) -> tuple[int, Any]:
    """One port access on `device` as the port bus hands it over: the region covering `port`
    decides the offset. Returns (the value the guest reads or wrote, the handler's verdict)."""
    for r in device.regions():
        if r.space == "io" and r.start <= port < r.start + r.size:
            ex = FakeIo(port, size, value is not None, value or 0, base=r.start if r.base is None else r.base)
            verdict = r.handler(ex)
            return ex.value, verdict
    raise AssertionError(f"{device.name} has no region at port {port:#x}")


def mmio_access(device: Any, address: int, length: int, data: bytes | None = None) -> tuple[bytes, Any]:
    """One MMIO access on `device`, as the MMIO bus hands it over."""
    for r in device.regions():
        if r.space == "mmio" and r.start <= address < r.start + r.size:
            ex = FakeMmio(address, length, data is not None, data or b"", base=r.start if r.base is None else r.base)
            verdict = r.handler(ex)
            return ex.data, verdict
    raise AssertionError(f"{device.name} has no MMIO region at {address:#x}")


def io_data(vcpu: SyntheticVcpu, size: int, count: int = 1) -> list[int]:
    """The port data in the kvm_run page, as the guest will see it after an IN."""
    data = ffi.cast({1: "uint8_t *", 2: "uint16_t *", 4: "uint32_t *"}[size], vcpu.page + PIO_DATA)
    return [int(data[i]) for i in range(count)]


def bare_exit_policy() -> ExitPolicy:
    """An exit policy over empty port and MMIO buses, with no interrupt handling or notes."""
    ports = AddressSpace("port", 0x10000, direct_index=True)
    mmio = AddressSpace("address", 1 << 52, direct_index=False)
    return ExitPolicy(ports, mmio, on_interrupt=lambda ex: None, strict=False, note=lambda kind, **f: None)
