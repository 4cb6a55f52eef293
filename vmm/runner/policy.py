"""The exit policy: from one exit to a verdict. Where every exit is handled, in this order:

1. Infrastructure, which cannot be replaced: INTR (a kick: stops, pauses, participants' kick
   hooks) goes to the runner's `on_interrupt`; IO and MMIO go to the device on the port or MMIO
   bus at that address, with the offset from the device's base (or to the empty-bus behaviour).
2. Participants' claims (the SPP engine on emulation failures, a debugger on DEBUG exits), in
   the order they attached; a claim returns `PASS` for an exit that is not its business.
3. The user's table (`on_exit`), then the built-in defaults (`vmm.runner.defaults`), then the
   verdict for an exit nobody handles.

`handle` is a plain function of the exit: unit tests feed it synthetic exits built without a vCPU
(see tests/unit/test_exit_policy.py), as Firecracker tests `handle_kvm_exit`.
"""

from __future__ import annotations

from collections.abc import Callable

from vmm.board.bus import AddressSpace, Mapping
from vmm.errors import ConfigError, ExitStatus
from vmm.kvm.exits import Exit, IntrExit, IoExit, MmioExit
from vmm.record import TupleRecord
from vmm.runner import defaults
from vmm.verdict import Stop, Unclaimed, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any, Final


class Routes(TupleRecord):
    """The exit policy's routes for the two bus exits, which the run loop takes directly
    (`vmm.kvm.exits.ExitRoutes` says how): the port router, the MMIO router, the port bus's live
    direct index, the MMIO bus's page and store indexes, the exception by which a device declines an access
    and what a declined access then is."""

    io: Callable[[IoExit], Verdict]
    mmio: Callable[[MmioExit], Verdict]
    ports: dict[int, Mapping]
    pages: dict[int, Mapping]
    stores: dict[int, tuple[memoryview, int]]
    declined: type[Exception]
    refuse: Callable[[Any, Exception], Verdict]


def all_to(handle: Callable[[Exit], Verdict]) -> Routes:
    """Routes that hand every bus exit to `handle` too: for a run whose observers see every exit."""
    return Routes(handle, handle, {}, {}, {}, Unclaimed, lambda ex, e: handle(ex))


class Pass:
    """A participant's answer for an exit that is not its business: ask the next one."""

    _instance: Pass | None = None

    def __new__(cls) -> Pass:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PASS"


PASS: Final = Pass()
if TYPE_CHECKING:
    Handler = Callable[[Any], Verdict]
    Claim = Callable[[Any], Verdict | Pass]
Note = Callable[..., None]  # (kind, **fields): a trace line that is not an exit
_INFRASTRUCTURE = {IntrExit.reason: "INTR", IoExit.reason: "IO", MmioExit.reason: "MMIO"}


class ExitPolicy:
    def __init__(
        self,
        ports: AddressSpace,
        mmio: AddressSpace,
        *,
        on_interrupt: Handler,
        strict: bool = False,
        note: Note | None = None,
    ) -> None:
        self.ports = ports
        self.mmio = mmio
        self.strict = strict
        self.note = note
        self._on_interrupt = on_interrupt
        self._port_index = ports.index
        self._route_io = self._make_route_io()
        self._route_mmio = self._make_route_mmio()
        self._user: dict[int, Handler] = {}
        self._claims: dict[int, list[Claim]] = {}
        self._table: dict[int, Handler] = {}
        self.handle: Handler = self._by_raw_reason
        self._rebuild()

    # --- registration --------------------------------------------------------------------
    def on_exit(self, kind: type[Exit] | int, handler: Handler) -> None:
        """The user's handler for every exit of `kind` (an Exit class or a raw reason number);
        replaces the user's previous one for that kind, and the built-in default."""
        reason = _reason(kind)
        if reason in _INFRASTRUCTURE:
            what = _INFRASTRUCTURE[reason]
            hint = {"IO": "use on_io", "MMIO": "use on_mmio"}.get(what, "kicks are the runner's")
            raise ConfigError(f"{what} exits are routed by pyvmm itself and cannot be replaced ({hint})")
        self._user[reason] = handler
        self._rebuild()

    def claim(self, kind: type[Exit] | int, claim: Claim) -> None:
        """A participant's first look at every exit of `kind`, before the user's table."""
        reason = _reason(kind)
        if reason in _INFRASTRUCTURE:
            raise ConfigError(f"{_INFRASTRUCTURE[reason]} exits cannot be claimed: put a device on the bus")
        self._claims.setdefault(reason, []).append(claim)
        self._rebuild()

    def release(self, kind: type[Exit] | int, claim: Claim) -> None:
        claims = self._claims.get(_reason(kind), [])
        if claim in claims:
            claims.remove(claim)
            self._rebuild()

    def handler_for(self, kind: type[Exit] | int) -> Handler:
        """What an exit of `kind` goes to after the participants: the user's handler or the default."""
        reason = _reason(kind)
        return self._user.get(reason) or defaults.BY_REASON.get(reason) or defaults.unhandled

    def _rebuild(self) -> None:
        table: dict[int, Handler] = {
            IntrExit.reason: self._on_interrupt,
            IoExit.reason: self._route_io,
            MmioExit.reason: self._route_mmio,
        }
        for reason in set(self._user) | set(self._claims) | set(defaults.BY_REASON):
            if reason not in table:
                table[reason] = _chain(self._claims.get(reason, []), self.handler_for(reason))
        self._table = table
        self.handle = self._make_handle(table)

    @property
    def routes(self) -> Routes:
        """The port and MMIO routers on their own: the run loop hands IO and MMIO exits straight
        to them (infrastructure: no user handler or claim can replace them in the table)."""
        return Routes(
            self._route_io, self._route_mmio, self._port_index, self.mmio.pages, self.mmio.stores, Unclaimed,
            self._declined,
        )

    # --- the hot path ----------------------------------------------------------------------
    def _make_handle(self, table: dict[int, Handler]) -> Handler:
        """`handle(ex)`: the exit policy as one function of the exit. Rebuilt whenever a handler
        or a claim changes, so the per-exit work is one dict lookup and a call."""
        get, fallback = table.get, self._by_raw_reason

        def handle(ex: Exit) -> Verdict:
            return get(ex.reason, fallback)(ex)

        return handle

    def _by_raw_reason(self, ex: Exit) -> Verdict:
        # Views of reasons x86 has no class for (Unknown, ForeignExit) share reason -1; a handler
        # registered for their raw number (an SPP kernel profile's exit 28, say) still gets them.
        raw = getattr(ex, "raw_reason", None)
        handler = self._table.get(raw) if raw is not None else None
        return (handler or defaults.unhandled)(ex)

    def _make_route_io(self) -> Handler:
        """The port router: a closure over the direct index, since it runs on every port exit."""
        index_get, unhandled = self._port_index.get, self._unhandled_io

        def route_io(ex: IoExit) -> Verdict:
            m = index_get(ex.port)
            if m is None:
                return unhandled(ex)
            ex.offset = ex.port - m.base
            handler = m.handler
            if ex.count == 1:
                try:  # free in 3.11 until something raises
                    verdict = handler(ex)
                except Unclaimed as e:
                    return unhandled(ex, e.why)
                if not ex.is_write:
                    ex.store()
                return verdict
            # string I/O (rep ins/outs): one exit carries `count` elements; hand them over one by one
            verdict = None
            for i in range(ex.count):
                ex.select(i)
                try:
                    verdict = handler(ex)
                except Unclaimed as e:  # declined by kind: the first element, and so all of them
                    return unhandled(ex, e.why)
                if not ex.is_write:
                    ex.store()
                if verdict is not None:
                    break
            return verdict

        return route_io

    def _make_route_mmio(self) -> Handler:
        """The MMIO router, a closure as the port router is: every trapped store comes through it."""
        lookup, page_get, unhandled = self.mmio.lookup, self.mmio.pages.get, self._unhandled_mmio

        def route_mmio(ex: MmioExit) -> Verdict:
            m = page_get(ex.address >> 12)  # a page one device covers whole, found before
            if m is None:
                m = lookup(ex.address)
                if m is None:
                    return unhandled(ex)
            ex.offset = ex.address - m.base
            try:
                verdict = m.handler(ex)
            except Unclaimed as e:
                return unhandled(ex, e.why)
            if not ex.is_write:
                ex.store()
            return verdict

        return route_mmio

    def _declined(self, ex: IoExit | MmioExit, e: Exception) -> Verdict:
        why = e.why if isinstance(e, Unclaimed) else str(e)
        return self._unhandled_io(ex, why) if isinstance(ex, IoExit) else self._unhandled_mmio(ex, why)

    # --- the empty bus -----------------------------------------------------------------------
    def _unhandled_io(self, ex: IoExit, why: str = "") -> Verdict:
        if self.note is not None:
            fields = {"why": why} if why else {}
            self.note("unhandled-io", vcpu=ex.vcpu.index, port=ex.port, size=ex.size, write=ex.is_write, **fields)
        if self.strict:
            what = f"port {ex.port:#x}: {why}" if why else f"no device at port {ex.port:#x}"
            return Stop(ExitStatus.UNHANDLED_EXIT, f"{what} (--strict)", fatal=True)
        if not ex.is_write:
            for i in range(ex.count):  # an empty ISA bus reads as all-ones, every element
                ex.select(i)
                ex.value = 0xFFFFFFFF
                ex.store()
        return None

    def _unhandled_mmio(self, ex: MmioExit, why: str = "") -> Verdict:
        if self.note is not None:
            fields = {"why": why} if why else {}
            self.note(
                "unhandled-mmio", vcpu=ex.vcpu.index, address=ex.address, length=ex.length, write=ex.is_write, **fields
            )
        if self.strict:
            what = f"address {ex.address:#x}: {why}" if why else f"no device at address {ex.address:#x}"
            return Stop(ExitStatus.UNHANDLED_EXIT, f"{what} (--strict)", fatal=True)
        if not ex.is_write:
            ex.value = (1 << (8 * ex.length)) - 1
            ex.store()
        return None


def _reason(kind: type[Exit] | int) -> int:
    if isinstance(kind, int):
        return kind
    if kind.reason < 0:
        raise ConfigError(f"{kind.__name__} has no fixed exit reason: register its raw reason number")
    return kind.reason


def _chain(claims: list[Claim], last: Handler) -> Handler:
    if not claims:
        return last
    claims = list(claims)

    def chained(ex: Exit) -> Verdict:
        for claim in claims:
            verdict = claim(ex)
            if verdict is not PASS:
                return verdict  # type: ignore[return-value]
        return last(ex)

    return chained
