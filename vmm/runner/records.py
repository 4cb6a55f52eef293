"""The records a trace (`--trace`) or a timeline (`--timeline`) is written from, and the run loop
that makes them.

With a recorder on, each vCPU thread runs `recording_loop` instead of the runner's plain loop
(chosen once per run, so a run without one pays nothing): the loop it is, plus two clock reads and
one flat tuple appended to a deque per exit. The first clock read comes as KVM_RUN's return reaches
the loop, the second as the loop goes back into it, so a record's duration is all the time the
exit spent outside the guest (the handler and the monitor's own work), not the handler alone.

Every record is `WIDTH` items, and the first is its kind, which for the common exits *is* the
trace's %-template for the record's other items, with the vCPU's index already in it (one
template per vCPU and kind, made once): the trace writer (`vmm.runner.trace`) joins the kinds of a batch
into one format string and formats the whole batch with one `%`, with no Python code per record.
Everything else is a `Slow` record, `(SLOW, Slow(...), b"", ...)`: its template is `%s` plus a
`%.0s` for each pad, and bytes `%s` calls `Slow.__bytes__`, which formats it through json, so it takes its
place in the same `%`. A writer thread (`vmm.runner.tracewriter`) does all of the formatting.
"""

from __future__ import annotations

import time
from binascii import hexlify
from collections.abc import Callable, Sequence

from kvm_abi import ffi
from vmm.errors import UserCodeError
from vmm.kvm.exits import Exit, IoExit, MmioExit
from vmm.record import TupleRecord
from vmm.runner.policy import Routes
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

Dispatch = Callable[[Exit], Verdict]
if TYPE_CHECKING:
    Put = Callable[[tuple[Any, ...]], None]
WIDTH = 5  # items in every record: the trace writer slices the kinds out of a flat batch by it

# A port record:  (kind, t0, site, value, dur_ns)   site: `"rip": R, "port": P, "size": S`
# an MMIO record: (kind, t0, site, where, dur_ns)   site: `"rip": R, "length": L`; where: the
#                 address's text and, for a write, `, "data": "HEX"` (`mmio_where`)
# Bytes: bytes % formatting is cheaper than str's and needs no encoding. `{vcpu}` is filled once
# per vCPU. Turning an int into decimal text is the dearest part of a `%d` (CPython 3.11 makes a
# scratch number for every one), and an exit's RIP, port and size repeat from exit to exit (the
# same few instructions exit again and again), so the vCPU loop keeps each site's text in a dict
# and the record carries it whole. An MMIO address is a `%d`: stores to a page go to many.
_IO = '{{"mono_ns": %d, "vcpu": {vcpu}, "reason": "IO", %s, "write": {write}, "value": %d, "dur_ns": %d}}\n'
_MMIO = '{{"mono_ns": %d, "vcpu": {vcpu}, "reason": "MMIO", %s, "write": {write}, "address": %s, "dur_ns": %d}}\n'
SLOW = b"%s" + b"%.0s" * (WIDTH - 2)
# what a Slow record is:  EXIT (t0, vcpu, snapshot, dur_ns)  any other exit, and string I/O
#                         STOP (t1, vcpu, status, reason)    right after the exit whose handler stopped
#                         NOTE (t, event, fields)            an unhandled port, a rejected guest request
#                         SPP  (t, vcpu, gpa, verdict_name, text)  an SPP violation judged
EXIT, STOP, NOTE, SPP = "exit", "stop", "note", "spp"
_PAD = (b"",) * (WIDTH - 2)
_SITES = 4096  # sites a vCPU loop keeps the text of (then it starts again)


class Kind(TupleRecord):
    """What a fast record's template says, for the readers that do not take it as text (by
    content: the vCPU is in the text, so no two kinds' templates are equal)."""

    reason: str  # "IO" or "MMIO"
    write: bool
    vcpu: int


class Kinds(TupleRecord):
    io_out: bytes
    io_in: bytes
    mmio_write: bytes
    mmio_read: bytes


KIND: dict[bytes, Kind] = {}  # template -> what it says
_KINDS: dict[int, Kinds] = {}


def kinds(vcpu: int) -> Kinds:
    """The four fast templates of vCPU `vcpu`, made at its first use."""
    made = _KINDS.get(vcpu)
    if made is None:

        def make(text: str, reason: str, write: bool) -> bytes:
            b = text.format(vcpu=vcpu, write="true" if write else "false").encode()
            KIND[b] = Kind(reason, write, vcpu)
            return b

        made = _KINDS[vcpu] = Kinds(
            make(_IO, "IO", True), make(_IO, "IO", False),
            make(_MMIO, "MMIO", True), make(_MMIO, "MMIO", False),
        )  # fmt: skip
    return made


class Site(bytes):
    """The text of an exit's site (`"rip": R, "port": P, "size": S`, or `"rip": R, "length": L`),
    and its numbers for the readers that do not take it as text."""

    rip: int | None
    port: int | None
    size: int


def io_site(rip: int | None, port: int, size: int) -> Site:
    s = Site(b'"rip": %s, "port": %d, "size": %d' % (b"null" if rip is None else b"%d" % rip, port, size))
    s.rip, s.port, s.size = rip, port, size
    return s


def mmio_site(rip: int | None, length: int) -> Site:
    s = Site(b'"rip": %s, "length": %d' % (b"null" if rip is None else b"%d" % rip, length))
    s.rip, s.port, s.size = rip, None, length
    return s


class Slow:
    """A record no template covers: formatted through json (`vmm.runner.trace`) when the
    trace's `%` reaches it, on the writer thread."""

    __slots__ = ("fields", "what")

    def __init__(self, what: str, *fields: Any) -> None:
        self.what = what
        self.fields = fields

    def __bytes__(self) -> bytes:
        return _slow_formatter[0](self).encode()


# How a Slow record becomes a line: vmm.runner.trace, which formats records, puts its formatter
# here when it loads (it imports this module; this one does not import it back)
_slow_formatter: list[Callable[[Slow], str]] = []


def format_slow_with(formatter: Callable[[Slow], str]) -> None:
    _slow_formatter[:] = [formatter]


def mmio_where(where: bytes) -> tuple[int, bytes | None]:
    """An MMIO record's address and, for a write, its data (hex) back from their text."""
    address, _, data = where.partition(b",")
    return int(address), data.split(b'"')[3] if data else None


def slow(what: str, *fields: Any) -> tuple[Any, ...]:
    return (SLOW, Slow(what, *fields), *_PAD)


if TYPE_CHECKING:
    Loop = Callable[[Any, Dispatch, Routes | None], Stop]


def recording_loop(puts: Sequence[Put]) -> Loop:
    """The runner's run loop (`vmm.runner.runner._loop`) with a record per exit handed to every
    `put` (a trace's and a timeline's writer)."""
    if len(puts) == 1:
        put = puts[0]
    else:

        def put(record: tuple[Any, ...]) -> None:
            for p in puts:
                p(record)

    def loop(vcpu: Any, handle: Dispatch, routes: Routes | None) -> Stop:
        run, clock, index = vcpu.run, time.perf_counter_ns, vcpu.index
        io, mmio = vcpu.view(IoExit.reason), vcpu.view(MmioExit.reason)
        # port and MMIO exits straight to their routers when nothing observes them
        io_dispatch, mmio_dispatch = (routes.io, routes.mmio) if routes is not None else (handle, handle)
        io_out, io_in, mmio_write, mmio_read = kinds(index)
        gprs = getattr(vcpu, "sync_gprs", None)
        # RIP as element 0 of a pointer into the sync regs: an index, cheaper than a field by name
        rip_at: Any = [None] if gprs is None else ffi.cast("uint64_t *", ffi.addressof(gprs, "rip"))
        io_: Any = io
        mm: Any = mmio
        sites: dict[tuple[Any, ...], Site] = {}  # (rip, port, size) or (rip, length) -> its text
        get_site = sites.get

        def new_site(key: tuple[Any, ...]) -> Site:
            if len(sites) >= _SITES:
                sites.clear()
            s = sites[key] = io_site(*key) if len(key) == 3 else mmio_site(*key)
            return s

        # -1 is no RIP, port or length: the first exit of each kind looks its site up
        out_rip: Any = -1
        in_rip: Any = -1
        mmio_rip: Any = -1
        out_port = out_size = in_port = in_size = mmio_size = -1
        out_site = in_site = mmio_site_ = Site()
        key: tuple[Any, ...]
        while True:
            ex = run()
            t0 = clock()
            # the second clock read is the tuple's last item: taken as the record is made
            if ex is io:
                verdict = io_dispatch(ex)
                if io_.count == 1:
                    # the site of the last OUT and of the last IN are kept at hand: a loop that
                    # polls a status port and writes a data port checks two ints and an index
                    rip, port, size = rip_at[0], io_.port, io_.size
                    if io_.is_write:
                        if rip != out_rip or port != out_port or size != out_size:
                            out_rip, out_port, out_size = key = (rip, port, size)
                            out_site = get_site(key) or new_site(key)
                        put((io_out, t0, out_site, io_.value, clock() - t0))
                    else:
                        if rip != in_rip or port != in_port or size != in_size:
                            in_rip, in_port, in_size = key = (rip, port, size)
                            in_site = get_site(key) or new_site(key)
                        put((io_in, t0, in_site, io_.value, clock() - t0))
                else:
                    put(slow(EXIT, t0, index, ex.snapshot(), clock() - t0))
            elif ex is mmio:
                verdict = mmio_dispatch(ex)
                rip, size = rip_at[0], mm.length
                if rip != mmio_rip or size != mmio_size:  # one site at hand, as for ports
                    mmio_rip, mmio_size = key = (rip, size)
                    mmio_site_ = get_site(key) or new_site(key)
                if mm.is_write:
                    where = b'%d, "data": "%s"' % (mm.address, hexlify(mm.data))
                    put((mmio_write, t0, mmio_site_, where, clock() - t0))
                else:
                    put((mmio_read, t0, mmio_site_, b"%d" % mm.address, clock() - t0))
            else:
                verdict = handle(ex)
                put(slow(EXIT, t0, index, ex.snapshot(), clock() - t0))
            if verdict is not None:
                put(slow(STOP, clock(), index, verdict.status, verdict.reason))
                if verdict.__class__ is not Stop:
                    raise UserCodeError(f"a handler returned {verdict!r}, which is not a verdict (None or a Stop)")
                return verdict

    return loop


class ExitRecorder:
    """Hands records to a writer thread; the subclass says how records become text
    (`format_batch`) and what goes before and after."""

    def __init__(self, fd: int) -> None:
        # the writer loads only when a trace is asked for: a plain run's start-up skips it
        from vmm.runner.tracewriter import TraceWriter

        self.start_ns = time.perf_counter_ns()  # CLOCK_MONOTONIC, as every record's time stamp
        self.writer = TraceWriter(fd, self.format_batch, WIDTH, self.header, self.trailer)
        self.put: Put = self.writer.put

    def note(self, kind: str, **fields: Any) -> None:
        """A record that is not an exit (unhandled port, rejected guest request, ...)."""
        self.put(slow(NOTE, time.perf_counter_ns(), kind, fields))

    def on_spp(self, event: Any, verdict: Any) -> None:
        """An SPP event judged (the SPP controller calls it on the vCPU thread)."""
        self.put(slow(SPP, time.perf_counter_ns(), int(event.vcpu), event.gpa, type(verdict).__name__,
                      event.describe()))  # fmt: skip

    def start(self) -> None:
        self.writer.start()

    def finish(self, what: str) -> str | None:
        """Write what is left; the end-of-run line if records were dropped."""
        self.writer.finish()
        return self.writer.summary(what)

    def close(self) -> None:
        """After the machine's last run: the trailer."""
        self.writer.close()

    # --- the text, on the writer thread ----------------------------------------------------------
    def header(self) -> str:
        return ""

    def trailer(self) -> str:
        return ""

    def format_batch(self, batch: list[Any]) -> bytes:
        raise NotImplementedError
