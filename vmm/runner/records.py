"""The records a trace (`--trace`) or a timeline (`--timeline`) is written from, and the observer
that makes them.

The vCPU thread does the least it can: two clock reads and one flat tuple appended to a deque; a
writer thread (`vmm.runner.tracewriter`) turns batches of tuples into text. The first item of a
record is its kind, and for the common exits the kind *is* the trace's %-template for the
record: the trace writer joins the first items of a batch into one format string and formats the
whole batch with one `%` (its values are ints and fixed keys, so the template is valid JSON).
Everything else is a SLOW record, which the writer formats through json one at a time.
"""

from __future__ import annotations

import time
from binascii import hexlify
from collections.abc import Callable
from typing import Any

from vmm.kvm.exits import Exit, IoExit, MmioExit
from vmm.verdict import Verdict

Dispatch = Callable[[Exit], Verdict]

# (kind, t0, vcpu, rip, port, size, value, handler_ns); %.0s swallows the kind. Bytes: bytes %
# formatting is cheaper than str's (a fifth fewer instructions per line) and needs no encoding.
IO_OUT = (
    b'%.0s{"mono_ns": %d, "vcpu": %d, "reason": "IO", "rip": %d, "port": %d, "size": %d, "write": true, '
    b'"value": %d, "handler_ns": %d}\n'
)
IO_IN = IO_OUT.replace(b'"write": true', b'"write": false')
# (kind, t0, vcpu, rip, address, length, data_hex, handler_ns): data as hex bytes; b"" for a read, swallowed
MMIO_WRITE = (
    b'%.0s{"mono_ns": %d, "vcpu": %d, "reason": "MMIO", "rip": %d, "address": %d, "length": %d, '
    b'"write": true, "data": "%s", "handler_ns": %d}\n'
)
MMIO_READ = MMIO_WRITE.replace(b'"write": true, "data": "%s"', b'"write": false%.0s')
FAST = (IO_OUT, IO_IN, MMIO_WRITE, MMIO_READ)
# (SLOW, what, ...): formatted by json; the writer replaces the record with (SLOW, its line)
SLOW = b"%.0s%s"
# what:  EXIT (t0, vcpu, snapshot, handler_ns)    any other exit, and string I/O
#        STOP (t1, vcpu, status, reason)         right after the exit whose handler stopped
#        NOTE (t, event, fields)                 an unhandled port, a rejected guest request
#        SPP  (t, vcpu, gpa, verdict_name, text)  an SPP violation judged
EXIT, STOP, NOTE, SPP = "exit", "stop", "note", "spp"


class _NoRegs:
    rip = None  # KVM fills no sync regs: no RIP without an ioctl, and none is made per exit


class ExitRecorder:
    """Hands one record per exit (and per note, stop and SPP event) to a writer thread; the
    subclass says how records become text (`format_batch`) and what goes before and after."""

    def __init__(self, fd: int) -> None:
        # the writer loads only when a trace is asked for: a plain run's start-up skips it
        from vmm.runner.tracewriter import TraceWriter

        self.start_ns = time.perf_counter_ns()  # CLOCK_MONOTONIC, as every record's time stamp
        self.writer = TraceWriter(fd, self.format_batch, self.header, self.trailer)

    def wrap(self, dispatch: Dispatch, route_io: Dispatch | None = None) -> Dispatch:
        """`route_io`: the port router, when `dispatch` is the exit policy itself (no observer in
        between): port exits go to it straight, as the run loop sends them without observers."""
        io_dispatch = route_io or dispatch
        clock = time.perf_counter_ns
        put = self.writer.put
        io_class, mmio_class = IoExit, MmioExit
        io_out, io_in, mmio_write, mmio_read, slow = IO_OUT, IO_IN, MMIO_WRITE, MMIO_READ, SLOW
        regs_of: dict[int, Any] = {}  # vCPU index -> its sync-regs GPRs: RIP is one field read, no call

        def regs(vcpu: Any) -> Any:
            r = regs_of[vcpu.index] = getattr(vcpu, "sync_gprs", None) or _NoRegs()
            return r

        def recorded(ex: Exit) -> Verdict:
            cls = ex.__class__
            t0 = clock()
            verdict = io_dispatch(ex) if cls is io_class else dispatch(ex)
            t1 = clock()
            vcpu = ex.vcpu
            index = vcpu.index
            if cls is io_class:  # the most frequent exit: plain values, no dict
                io: Any = ex
                if io.count == 1:
                    rip = (regs_of.get(index) or regs(vcpu)).rip
                    put((io_out if io.is_write else io_in, t0, index, rip, io.port, io.size, io.value, t1 - t0))
                else:
                    put((slow, EXIT, t0, index, io.snapshot(), t1 - t0))
            elif cls is mmio_class:
                mm: Any = ex
                rip = (regs_of.get(index) or regs(vcpu)).rip
                if mm.is_write:
                    put((mmio_write, t0, index, rip, mm.address, mm.length, hexlify(mm.data), t1 - t0))
                else:
                    put((mmio_read, t0, index, rip, mm.address, mm.length, b"", t1 - t0))
            else:
                put((slow, EXIT, t0, index, ex.snapshot(), t1 - t0))
            if verdict is not None:
                put((slow, STOP, t1, index, verdict.status, verdict.reason))
            return verdict

        return recorded

    def note(self, kind: str, **fields: Any) -> None:
        """A record that is not an exit (unhandled port, rejected guest request, ...)."""
        self.writer.put((SLOW, NOTE, time.perf_counter_ns(), kind, fields))

    def on_spp(self, event: Any, verdict: Any) -> None:
        """An SPP event judged (the SPP controller calls it on the vCPU thread)."""
        self.writer.put((SLOW, SPP, time.perf_counter_ns(), int(event.vcpu), event.gpa, type(verdict).__name__,
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
