"""The exit dispatcher: handlers register by exit kind, by I/O port range or by MMIO range.

Built-in devices register through exactly these calls, so a user script can replace any of them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from vmm.kvm.exits import Exit, IoExit, MmioExit
from vmm.verdict import Stop, Verdict

Handler = Callable[[Any], Verdict]

# Ranges up to this many ports go into the per-port table (one dict lookup on the hot path);
# larger ones are searched after it.
_PORT_TABLE_LIMIT = 4096


class Dispatcher:
    def __init__(self) -> None:
        self._by_reason: dict[int, Handler] = {}
        self._ports: dict[int, Handler] = {}
        self._port_ranges: list[tuple[int, int, Handler]] = []
        self._mmio_starts: list[int] = []
        self._mmio: list[tuple[int, int, Handler]] = []  # sorted (start, end, handler)
        self._mmio_last: tuple[int, int, Handler] = (0, 0, lambda ex: None)
        self.unhandled_io: Handler = lambda ex: None
        self.unhandled_mmio: Handler = lambda ex: None
        self.unhandled_exit: Handler = lambda ex: Stop(14, f"no handler for exit {ex.name}", fatal=True)
        self._by_reason[IoExit.reason] = self._route_io
        self._by_reason[MmioExit.reason] = self._route_mmio

    # --- registration ------------------------------------------------------------------
    def on_exit(self, kind: type[Exit] | int, handler: Handler) -> None:
        """Handle every exit of `kind` (an Exit class or a raw reason number); replaces the previous."""
        reason = kind if isinstance(kind, int) else kind.reason
        self._by_reason[reason] = handler

    def exit_handler(self, kind: type[Exit] | int) -> Handler | None:
        return self._by_reason.get(kind if isinstance(kind, int) else kind.reason)

    def on_io(self, first: int, count: int, handler: Handler) -> None:
        """Handle ports [first, first + count); a later registration wins where ranges overlap."""
        if not (first >= 0 and count > 0 and first + count <= 0x10000):
            raise ValueError(f"bad port range {first:#x}+{count}")
        if count <= _PORT_TABLE_LIMIT:
            for p in range(first, first + count):
                self._ports[p] = handler
        else:
            # the per-port table is searched first, so earlier small registrations inside this
            # range must leave it, or they would shadow the later (winning) large one
            for p in [p for p in self._ports if first <= p < first + count]:
                del self._ports[p]
            self._port_ranges.insert(0, (first, first + count, handler))

    def remove_io(self, first: int, count: int) -> None:
        """Forget the handlers of ports [first, first + count): they fall back to whatever a wider
        range or the unhandled-port behaviour says (a device moved elsewhere, say)."""
        for p in range(first, first + count):
            self._ports.pop(p, None)
        self._port_ranges = [r for r in self._port_ranges if (r[0], r[1]) != (first, first + count)]

    def on_mmio(self, base: int, size: int, handler: Handler) -> None:
        """Handle guest-physical [base, base + size) where no RAM backs it (or it is read-only)."""
        if base < 0 or size <= 0:
            raise ValueError(f"bad MMIO range {base:#x}+{size:#x}")
        end = base + size
        for s, e, _ in self._mmio:
            if base < e and s < end:
                raise ValueError(f"MMIO range {base:#x}-{end:#x} overlaps {s:#x}-{e:#x}")
        i = bisect.bisect(self._mmio_starts, base)
        self._mmio_starts.insert(i, base)
        self._mmio.insert(i, (base, end, handler))

    def remove_mmio(self, base: int) -> None:
        self._mmio_last = (0, 0, self.unhandled_mmio)
        i = self._mmio_starts.index(base)
        del self._mmio_starts[i]
        del self._mmio[i]

    # --- dispatch (the hot path) ---------------------------------------------------------
    def dispatch(self, ex: Exit) -> Verdict:
        return self._by_reason.get(ex.reason, self._by_raw_reason)(ex)

    def _by_raw_reason(self, ex: Exit) -> Verdict:
        # Views of reasons x86 has no class for (Unknown, ForeignExit) share reason -1; a handler
        # registered for their raw number (an SPP kernel profile's exit 28, say) still gets them.
        raw = getattr(ex, "raw_reason", None)
        handler = self._by_reason.get(raw) if raw is not None else None
        return (handler or self.unhandled_exit)(ex)

    def port_handler(self, port: int) -> Handler:
        h = self._ports.get(port)
        if h is not None:
            return h
        for s, e, rh in self._port_ranges:
            if s <= port < e:
                return rh
        return self.unhandled_io

    def _route_io(self, ex: IoExit) -> Verdict:
        h = self._ports.get(ex.port)
        if h is None:
            h = self.port_handler(ex.port)
        if ex.count == 1:
            return h(ex)
        # string I/O (rep ins/outs): one exit carries `count` elements; hand them over one by one
        verdict: Verdict = None
        for i in range(ex.count):
            ex.index = i
            verdict = h(ex)
            if verdict is not None:
                break
        return verdict

    def mmio_handler(self, addr: int) -> Handler:
        i = bisect.bisect(self._mmio_starts, addr) - 1
        if i >= 0:
            s, e, h = self._mmio[i]
            if addr < e:
                self._mmio_last = (s, e, h)
                return h
        return self.unhandled_mmio

    def _route_mmio(self, ex: MmioExit) -> Verdict:
        addr = ex._mmio.phys_addr
        start, end, handler = self._mmio_last  # consecutive exits mostly hit the same range
        if not start <= addr < end:
            handler = self.mmio_handler(addr)
        return handler(ex)
