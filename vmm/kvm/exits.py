"""Typed VM exits.

Each exit type is a view over the vCPU's shared `kvm_run` page: `Vcpu.run()` returns the same view
object for the same reason every time, and its properties read the page when asked. Nothing is
decoded or allocated on the exit path that the handler does not ask for. A view is only valid until
the next `run()`; call `snapshot()` to keep a copy.

One class per upstream exit reason that x86 produces; reasons of other architectures keep their name
through `ForeignExit`; a number pyvmm does not know at all becomes `Unknown`, never an error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence

from kvm_abi import exits as ke
from kvm_abi import ffi
from kvm_abi.constants import KVM_PIO_PAGE_OFFSET

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time
    from typing import Any, ClassVar, Literal, Protocol, TypeVar

    class ExitingVcpu(Protocol):
        """What an exit view, and a handler holding one, may ask of the vCPU it came from
        (`vmm.kvm.vcpu.Vcpu` is the real one; code that needs more holds the Vcpu itself)."""

        @property
        def index(self) -> int: ...
        @property
        def kvm_run(self) -> Any: ...
        @property
        def sync_regs(self) -> bool: ...
        def synced_rip(self) -> int | None: ...
        def get_regs(self) -> Any: ...
        def set_regs(self, regs: Any) -> None: ...
        def get_sregs(self) -> Any: ...
        def set_sregs(self, sregs: Any) -> None: ...
        def get_msrs(self, indices: list[int]) -> dict[int, int]: ...
        def set_msrs(self, values: dict[int, int]) -> None: ...

    class CountingVcpu(ExitingVcpu, Protocol):
        exits: int  # exits KVM_RUN returned on this vCPU, counted by `make_run`'s function

    R = TypeVar("R")  # what a served exit's handler returns to end the serving (a verdict)
    R_co = TypeVar("R_co", covariant=True)

_U = {1: "uint8_t *", 2: "uint16_t *", 4: "uint32_t *", 8: "uint64_t *"}
_VIEW_FORMATS: dict[int, Literal["B", "H", "I", "Q"]] = {1: "B", 2: "H", 4: "I", 8: "Q"}
_PIO_DATA_OFFSET = KVM_PIO_PAGE_OFFSET * 4096
_IO_OFFSET = ffi.offsetof("struct kvm_run", "io")
_IO_FIELDS = struct.Struct("<BBHIQ")  # direction, size, port, count, data_offset (the conformance test pins them)
_REASON_OFFSET = ffi.offsetof("struct kvm_run", "exit_reason")
_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}
_MMIO_OFFSET = ffi.offsetof("struct kvm_run", "mmio")
_MMIO_FIELDS = struct.Struct("<Q8sIB")  # phys_addr, data[8], len, is_write
assert _REASON_OFFSET % 4 == 0  # read as a 32-bit word of the page


class Exit:
    """Base of every exit view: the vCPU it came from, its reason number and name."""

    __slots__ = ("_run", "vcpu")
    reason: ClassVar[int] = -1
    name: ClassVar[str] = "?"

    def __init__(self, vcpu: ExitingVcpu, run: Any) -> None:
        self.vcpu = vcpu
        self._run = run

    @property
    def vcpu_index(self) -> int:
        return self.vcpu.index

    @property
    def rip(self) -> int | None:
        """Guest RIP at the exit, from the sync-regs area (no ioctl), or None if KVM did not fill it."""
        return self.vcpu.synced_rip()

    def fields(self) -> dict[str, Any]:
        """The decoded payload, for traces and reports."""
        return {}

    def snapshot(self) -> dict[str, Any]:
        return {"vcpu": self.vcpu.index, "reason": self.name, "rip": self.rip, **self.fields()}

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={_fmt(v)}" for k, v in self.fields().items())
        return f"{type(self).__name__}({body})"


def _fmt(v: Any) -> str:
    return hex(v) if isinstance(v, int) and not isinstance(v, bool) else repr(v)


class IoExit(Exit):
    """KVM_EXIT_IO: a port access, decoded into plain attributes as KVM_RUN returns (`make_run`):
    one unpack, no properties, since every port exit pays for it.

    `value` is the datum of element `index` (string I/O has `count` > 1): for an OUT it holds what
    the guest wrote; for an IN a handler sets it, and `store()` puts it into the guest's data
    (the port bus does that after the handler)."""

    __slots__ = ("_data", "_typed", "count", "index", "is_write", "offset", "port", "size", "value")
    reason = ke.KVM_EXIT_IO
    name = "IO"

    def __init__(self, vcpu: ExitingVcpu, run: Any) -> None:
        super().__init__(vcpu, run)
        # KVM always puts port data at the same offset, the page after kvm_run; typed views of
        # that page are made once (a memoryview's item costs about two thirds of a cffi pointer's)
        data = ffi.buffer(ffi.cast("char *", run) + _PIO_DATA_OFFSET, 4096)
        self._typed: dict[int, Any] = {n: memoryview(data).cast(f) for n, f in _VIEW_FORMATS.items()}
        self.port = self.size = self.count = self.index = self.offset = self.value = 0
        self.is_write = False
        self._data: Any = self._typed[1]

    def select(self, index: int) -> None:
        """Make element `index` of a string I/O exit the current one."""
        self.index = index
        self.value = int(self._data[index]) if self.is_write else 0

    def store(self) -> None:
        """Put `value` into the guest's data for the current element (an IN's answer)."""
        self._data[self.index] = self.value & _MASKS.get(self.size, 0xFFFFFFFF)

    def fields(self) -> dict[str, Any]:
        f: dict[str, Any] = {"port": self.port, "size": self.size, "write": self.is_write}
        if self.count != 1:
            f["count"] = self.count
        f["value"] = self.value
        return f


class MmioExit(Exit):
    """KVM_EXIT_MMIO: an access to guest-physical memory that no writable memslot backs, decoded
    into plain attributes as KVM_RUN returns (`make_run`). For a write `data` holds the bytes;
    for a read a handler sets `data` (or `value`) and `store()` hands them to the guest (the MMIO
    bus does that after the handler)."""

    __slots__ = ("_data_ptr", "address", "data", "is_write", "length", "offset")
    reason = ke.KVM_EXIT_MMIO
    name = "MMIO"

    def __init__(self, vcpu: ExitingVcpu, run: Any) -> None:
        super().__init__(vcpu, run)
        self._data_ptr = run.mmio.data
        self.address = self.length = self.offset = 0  # offset: address - the base of the device the router found
        self.is_write = False
        self.data = b""

    def store(self) -> None:
        """Put `data` into the guest's read (padded or cut to the access length)."""
        n = self.length
        ffi.memmove(self._data_ptr, self.data[:n].ljust(n, b"\0"), n)

    @property
    def value(self) -> int:
        return int.from_bytes(self.data, "little")

    @value.setter
    def value(self, v: int) -> None:
        n = self.length
        self.data = (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")

    def fields(self) -> dict[str, Any]:
        f: dict[str, Any] = {"address": self.address, "length": self.length, "write": self.is_write}
        if self.is_write:
            f["data"] = self.data.hex()
        return f


class HltExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_HLT
    name = "HLT"


class ShutdownExit(Exit):
    """KVM_EXIT_SHUTDOWN: the guest triple-faulted (or otherwise asked the CPU to shut down)."""

    __slots__ = ()
    reason = ke.KVM_EXIT_SHUTDOWN
    name = "SHUTDOWN"


class HwUnknownExit(Exit):
    """KVM_EXIT_UNKNOWN: KVM could not classify a hardware exit; carries the hardware reason."""

    __slots__ = ()
    reason = ke.KVM_EXIT_UNKNOWN
    name = "UNKNOWN"

    @property
    def hardware_exit_reason(self) -> int:
        return int(self._run.hw.hardware_exit_reason)

    def fields(self) -> dict[str, Any]:
        return {"hardware_exit_reason": self.hardware_exit_reason}


class FailEntryExit(Exit):
    """KVM_EXIT_FAIL_ENTRY: VM entry failed; the hardware reason says which check refused the state."""

    __slots__ = ()
    reason = ke.KVM_EXIT_FAIL_ENTRY
    name = "FAIL_ENTRY"

    @property
    def hardware_entry_failure_reason(self) -> int:
        return int(self._run.fail_entry.hardware_entry_failure_reason)

    @property
    def cpu(self) -> int:
        return int(self._run.fail_entry.cpu)

    def fields(self) -> dict[str, Any]:
        return {"hardware_entry_failure_reason": self.hardware_entry_failure_reason, "cpu": self.cpu}


class InternalErrorExit(Exit):
    """KVM_EXIT_INTERNAL_ERROR; for emulation failures, `insn_bytes` holds what KVM fetched."""

    __slots__ = ()
    reason = ke.KVM_EXIT_INTERNAL_ERROR
    name = "INTERNAL_ERROR"

    @property
    def suberror(self) -> int:
        return int(self._run.internal.suberror)

    @property
    def suberror_name(self) -> str:
        return ke.INTERNAL_ERROR_NAMES.get(self.suberror, f"suberror {self.suberror}")

    @property
    def data(self) -> list[int]:
        n = min(int(self._run.internal.ndata), 16)
        return [int(self._run.internal.data[i]) for i in range(n)]

    @property
    def insn_bytes(self) -> bytes | None:
        ef = self._run.emulation_failure
        if (
            self.suberror == ke.KVM_INTERNAL_ERROR_EMULATION
            and ef.ndata >= 3
            and ef.flags & ke.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
        ):
            return bytes(ffi.buffer(ef.insn_bytes, min(int(ef.insn_size), 15)))
        return None

    def fields(self) -> dict[str, Any]:
        f: dict[str, Any] = {"suberror": self.suberror_name, "data": [hex(d) for d in self.data]}
        insn = self.insn_bytes
        if insn is not None:
            f["insn_bytes"] = insn.hex(" ")
        return f


class ExceptionExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_EXCEPTION
    name = "EXCEPTION"

    def fields(self) -> dict[str, Any]:
        return {"exception": int(self._run.ex.exception), "error_code": int(self._run.ex.error_code)}


class HypercallExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_HYPERCALL
    name = "HYPERCALL"

    @property
    def nr(self) -> int:
        return int(self._run.hypercall.nr)

    @property
    def args(self) -> list[int]:
        return [int(a) for a in self._run.hypercall.args]

    @property
    def ret(self) -> int:
        return int(self._run.hypercall.ret)

    @ret.setter
    def ret(self, v: int) -> None:
        self._run.hypercall.ret = v

    def fields(self) -> dict[str, Any]:
        return {"nr": self.nr, "args": [hex(a) for a in self.args], "longmode": int(self._run.hypercall.longmode)}


class DebugExit(Exit):
    """KVM_EXIT_DEBUG: single-step or breakpoint; `exception` is 1 (#DB) or 3 (#BP)."""

    __slots__ = ()
    reason = ke.KVM_EXIT_DEBUG
    name = "DEBUG"

    @property
    def exception(self) -> int:
        return int(self._run.debug.arch.exception)

    @property
    def pc(self) -> int:
        return int(self._run.debug.arch.pc)

    @property
    def dr6(self) -> int:
        return int(self._run.debug.arch.dr6)

    @property
    def dr7(self) -> int:
        return int(self._run.debug.arch.dr7)

    def fields(self) -> dict[str, Any]:
        return {"exception": self.exception, "pc": self.pc, "dr6": self.dr6, "dr7": self.dr7}


class IrqWindowOpenExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_IRQ_WINDOW_OPEN
    name = "IRQ_WINDOW_OPEN"


class IntrExit(Exit):
    """KVM_EXIT_INTR: KVM_RUN returned because a signal is pending (or immediate_exit was set)."""

    __slots__ = ()
    reason = ke.KVM_EXIT_INTR
    name = "INTR"


class SetTprExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_SET_TPR
    name = "SET_TPR"


class TprAccessExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_TPR_ACCESS
    name = "TPR_ACCESS"

    def fields(self) -> dict[str, Any]:
        return {"rip": int(self._run.tpr_access.rip), "is_write": bool(self._run.tpr_access.is_write)}


class NmiExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_NMI
    name = "NMI"


class SystemEventExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_SYSTEM_EVENT
    name = "SYSTEM_EVENT"

    @property
    def type(self) -> int:
        return int(self._run.system_event.type)

    @property
    def data(self) -> list[int]:
        n = min(int(self._run.system_event.ndata), 16)
        return [int(self._run.system_event.data[i]) for i in range(n)]

    def fields(self) -> dict[str, Any]:
        return {"type": ke.SYSTEM_EVENT_NAMES.get(self.type, str(self.type)), "data": [hex(d) for d in self.data]}


class IoapicEoiExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_IOAPIC_EOI
    name = "IOAPIC_EOI"

    def fields(self) -> dict[str, Any]:
        return {"vector": int(self._run.eoi.vector)}


class HypervExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_HYPERV
    name = "HYPERV"

    def fields(self) -> dict[str, Any]:
        return {"type": int(self._run.hyperv.type)}


class MsrExit(Exit):
    """KVM_EXIT_X86_RDMSR / WRMSR (with KVM_CAP_X86_USER_SPACE_MSR): set `data` for reads, `error` to #GP."""

    __slots__ = ()
    name = "MSR"

    @property
    def index(self) -> int:
        return int(self._run.msr.index)

    @property
    def data(self) -> int:
        return int(self._run.msr.data)

    @data.setter
    def data(self, v: int) -> None:
        self._run.msr.data = v

    @property
    def error(self) -> bool:
        return bool(self._run.msr.error)

    @error.setter
    def error(self, v: bool) -> None:
        self._run.msr.error = 1 if v else 0

    def fields(self) -> dict[str, Any]:
        return {"index": self.index, "data": self.data, "error": self.error, "reason_bits": int(self._run.msr.reason)}


class RdmsrExit(MsrExit):
    __slots__ = ()
    reason = ke.KVM_EXIT_X86_RDMSR
    name = "X86_RDMSR"


class WrmsrExit(MsrExit):
    __slots__ = ()
    reason = ke.KVM_EXIT_X86_WRMSR
    name = "X86_WRMSR"


class DirtyRingFullExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_DIRTY_RING_FULL
    name = "DIRTY_RING_FULL"


class ApResetHoldExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_AP_RESET_HOLD
    name = "AP_RESET_HOLD"


class BusLockExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_X86_BUS_LOCK
    name = "X86_BUS_LOCK"


class XenExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_XEN
    name = "XEN"

    def fields(self) -> dict[str, Any]:
        return {"type": int(self._run.xen.type)}


class NotifyExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_NOTIFY
    name = "NOTIFY"

    def fields(self) -> dict[str, Any]:
        return {"flags": int(self._run.notify.flags)}


class MemoryFaultExit(Exit):
    """KVM_EXIT_MEMORY_FAULT (newer kernels): KVM could not resolve a guest-physical access."""

    __slots__ = ()
    reason = ke.KVM_EXIT_MEMORY_FAULT
    name = "MEMORY_FAULT"

    def fields(self) -> dict[str, Any]:
        mf = self._run.memory_fault
        return {"flags": int(mf.flags), "gpa": int(mf.gpa), "size": int(mf.size)}


class TdxExit(Exit):
    __slots__ = ()
    reason = ke.KVM_EXIT_TDX
    name = "TDX"


class ForeignExit(Exit):
    """An upstream reason that belongs to another architecture; x86 KVM never produces it."""

    __slots__ = ("_reason",)
    name = "FOREIGN_ARCH"

    def __init__(self, vcpu: ExitingVcpu, run: Any, reason: int) -> None:
        super().__init__(vcpu, run)
        self._reason = reason

    @property
    def raw_reason(self) -> int:
        return self._reason

    def fields(self) -> dict[str, Any]:
        return {"raw_reason": self._reason, "upstream_name": ke.EXIT_REASON_NAMES.get(self._reason, "?")}


class Unknown(Exit):
    """An exit reason pyvmm has no name for; carries the raw number."""

    __slots__ = ("_reason",)
    name = "UNKNOWN_REASON"

    def __init__(self, vcpu: ExitingVcpu, run: Any, reason: int) -> None:
        super().__init__(vcpu, run)
        self._reason = reason

    @property
    def raw_reason(self) -> int:
        return self._reason

    def fields(self) -> dict[str, Any]:
        return {"raw_reason": self._reason}


X86_EXIT_TYPES: dict[int, type[Exit]] = {
    cls.reason: cls
    for cls in (
        HwUnknownExit,
        ExceptionExit,
        IoExit,
        HypercallExit,
        DebugExit,
        HltExit,
        MmioExit,
        IrqWindowOpenExit,
        ShutdownExit,
        FailEntryExit,
        IntrExit,
        SetTprExit,
        TprAccessExit,
        NmiExit,
        InternalErrorExit,
        SystemEventExit,
        IoapicEoiExit,
        HypervExit,
        RdmsrExit,
        WrmsrExit,
        DirtyRingFullExit,
        ApResetHoldExit,
        BusLockExit,
        XenExit,
        NotifyExit,
        MemoryFaultExit,
        TdxExit,
    )
}


if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time

    class BusTarget(Protocol):
        """A device as a bus's index holds it (`vmm.board.bus.Mapping`)."""

        @property
        def handler(self) -> Callable[[Any], Any]: ...
        @property
        def base(self) -> int: ...

    class ExitRoutes(Protocol[R_co]):
        """Where `make_serve` hands the bus exits (`vmm.runner.policy.Routes` is the real one).

        A single-element port access to a port in `ports` (the port bus's live direct index), and
        an MMIO access to a page in `pages` (page number -> the device covering all of it, live),
        go straight to the device's handler, with `offset` set and a read's answer stored after
        it; a handler that raises `declined` has the access handed to `refuse` with the
        exception. A store of at most 7 bytes inside one 128-byte block in `stores` (the MMIO bus's
        live store index: block -> RAM view and the guest address of its first byte), not ending a
        page, is written into that RAM with no call. Every other port exit goes to `io`, every other
        MMIO exit to `mmio`."""

        @property
        def io(self) -> Callable[[IoExit], R_co | None]: ...
        @property
        def mmio(self) -> Callable[[MmioExit], R_co | None]: ...
        @property
        def ports(self) -> Mapping[int, BusTarget]: ...
        @property
        def pages(self) -> Mapping[int, BusTarget]: ...
        @property
        def stores(self) -> Mapping[int, tuple[memoryview, int]]: ...
        @property
        def declined(self) -> type[Exception]: ...
        @property
        def refuse(self) -> Callable[[Any, Exception], R_co | None]: ...


def make_run(
    vcpu: CountingVcpu, run: Any, views: Sequence[Exit], enter: Callable[[], int], failed: Callable[[], Exit]
) -> Callable[[], Exit]:
    """`Vcpu.run`: `enter()` (the vCPU's KVM_RUN ioctl, which only `Vcpu` makes), then the view of
    the exit in `run`, an IO or MMIO exit decoded; `failed()` when the ioctl returned < 0. `views`
    holds one view per reason below its length."""
    run_once: Callable[[], Exit] = _make_entry(vcpu, run, views, enter, failed, None, None)
    return run_once


def make_serve(
    vcpu: CountingVcpu, run: Any, views: Sequence[Exit], enter: Callable[[], int], failed: Callable[[], Exit],
    handle: Callable[[Exit], R | None], routes: ExitRoutes[R],
) -> Callable[[], R]:  # fmt: skip
    """`Vcpu.serve`: the same entry and decoding as `make_run`'s function, over and over, each exit
    handed to `handle`, or to its bus's route in `routes`, until one of them returns something
    other than None, which is returned. The run loop of a vCPU thread with nothing recording its
    exits: a port or MMIO exit then costs one call, its device's handler."""
    serve: Callable[[], R] = _make_entry(vcpu, run, views, enter, failed, handle, routes)
    return serve


def _make_entry(
    vcpu: CountingVcpu, run: Any, views: Sequence[Exit], enter: Callable[[], int], failed: Callable[[], Exit],
    handle: Callable[[Exit], Any] | None, routes: ExitRoutes[Any] | None,
) -> Any:  # fmt: skip
    """Both: without `handle` the function returns the first exit's view (`routes` must then be
    None too). One closure over everything it touches, with no Python call in between: it runs at
    every exit, and each call would cost about a tenth of a port exit's user time (bench group 11)."""
    assert (handle is None) == (routes is None)
    base = ffi.cast("char *", run)
    words = memoryview(ffi.buffer(base, _REASON_OFFSET + 4)).cast("I")  # a word read costs less than a cffi field's
    reason_at = _REASON_OFFSET // 4
    io_unpack, mmio_unpack = _IO_FIELDS.unpack_from, _MMIO_FIELDS.unpack_from
    io, mmio = views[ke.KVM_EXIT_IO], views[ke.KVM_EXIT_MMIO]
    assert isinstance(io, IoExit) and isinstance(mmio, MmioExit)
    io_reason, io_out, mmio_reason, limit = ke.KVM_EXIT_IO, ke.KVM_EXIT_IO_OUT, ke.KVM_EXIT_MMIO, len(views)
    page = ffi.buffer(base, _MMIO_OFFSET + _MMIO_FIELDS.size)
    typed_get, mask_of = io._typed.get, _MASKS.get
    if routes is not None:
        route_io, route_mmio, target_of, page_target = routes.io, routes.mmio, routes.ports.get, routes.pages.get
        declined, refuse, store_through = routes.declined, routes.refuse, routes.stores.get

    def entry() -> Any:
        while True:
            if enter() < 0:
                ex = failed()
            else:
                vcpu.exits += 1
                reason = words[reason_at]
                if reason == io_reason:
                    direction, size, port, count, data_offset = io_unpack(page, _IO_OFFSET)
                    io.port = port
                    io.size = size
                    io.count = count
                    io.index = 0
                    # KVM always puts the data one page in; typed views of there are made once
                    data: Any = typed_get(size) if data_offset == _PIO_DATA_OFFSET else None
                    if data is None:
                        data = ffi.cast(_U.get(size, "uint8_t *"), base + data_offset)
                    io._data = data
                    if direction == io_out:
                        io.is_write = True
                        io.value = data[0]
                    else:
                        io.is_write = False
                        io.value = 0
                    if routes is None:
                        return io
                    target = target_of(port) if count == 1 else None
                    if target is None:  # string I/O, or no device there: the router's business
                        verdict = route_io(io)
                    else:
                        io.offset = port - target.base
                        try:
                            verdict = target.handler(io)
                        except declined as e:
                            verdict = refuse(io, e)
                        else:
                            if direction != io_out:
                                data[0] = io.value & mask_of(size, 0xFFFFFFFF)
                    if verdict is not None:
                        return verdict
                    continue
                if reason == mmio_reason:
                    address, raw, length, is_write = mmio_unpack(page, _MMIO_OFFSET)
                    if is_write and routes is not None:
                        # RAM a device lets stores through to (SPP's allowed sub-pages): the store
                        # index holds only blocks, so a store within one ends in the same block
                        ram = store_through(address >> 7)
                        if ram is not None:
                            end = address + length
                            if length != 8 and end & 0xFFF and (end - 1) >> 7 == address >> 7:
                                view, start = ram
                                view[address - start : end - start] = raw[:length]
                                continue
                    mmio.address = address
                    mmio.length = length
                    if is_write:
                        mmio.is_write = True
                        mmio.data = raw[:length]
                    else:
                        mmio.is_write = False
                        mmio.data = bytes(length)
                    if routes is None:
                        return mmio
                    target = page_target(address >> 12)
                    if target is None:  # a page not looked up yet, or no device there
                        verdict = route_mmio(mmio)
                    else:
                        mmio.offset = address - target.base
                        try:
                            verdict = target.handler(mmio)
                        except declined as e:
                            verdict = refuse(mmio, e)
                        else:
                            if not is_write:
                                mmio.store()
                    if verdict is not None:
                        return verdict
                    continue
                ex = views[reason] if reason < limit else make_view(vcpu, run, reason)
            if handle is None:
                return ex
            verdict = handle(ex)
            if verdict is not None:
                return verdict

    return entry


def make_view(vcpu: ExitingVcpu, run: Any, reason: int) -> Exit:
    """The view object for `reason`; called once per reason per vCPU, not per exit."""
    cls = X86_EXIT_TYPES.get(reason)
    if cls is not None:
        return cls(vcpu, run)
    if reason in ke.EXIT_REASON_NAMES:
        view: Exit = ForeignExit(vcpu, run, reason)
    else:
        view = Unknown(vcpu, run, reason)
    return view
