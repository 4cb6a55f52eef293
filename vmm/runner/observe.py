"""Seeing the exits: a per-reason statistics table (`--stats`) and a JSON-lines trace (`--trace`).

Both wrap the dispatcher's `dispatch` function, so with neither enabled the run loop pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vmm.kvm.exits import Exit, IoExit
from vmm.verdict import Verdict

Dispatch = Callable[[Exit], Verdict]


class ExitStats:
    """Count and handler time per exit reason, like `perf kvm stat report`."""

    def __init__(self) -> None:
        self.table: dict[str, list[int]] = {}  # name -> [count, total ns]

    def wrap(self, dispatch: Dispatch) -> Dispatch:
        clock = time.perf_counter_ns
        table = self.table

        def timed(ex: Exit) -> Verdict:
            t0 = clock()
            verdict = dispatch(ex)
            dt = clock() - t0
            row = table.get(ex.name)
            if row is None:
                row = table[ex.name] = [0, 0]
            row[0] += 1
            row[1] += dt
            return verdict

        return timed

    def render(self) -> str:
        total = sum(r[0] for r in self.table.values()) or 1
        lines = [f"{'exit reason':<18}{'count':>10}{'%':>8}{'handler total':>16}{'mean':>12}"]
        for name, (count, ns) in sorted(self.table.items(), key=lambda kv: -kv[1][0]):
            lines.append(
                f"{name:<18}{count:>10}{100 * count / total:>7.1f}%{ns / 1e6:>13.3f} ms{ns / count / 1e3:>9.2f} µs"
            )
        return "\n".join(lines)


class ExitTrace:
    """One JSON object per exit: a monotonic time stamp, vCPU, reason, RIP, the decoded payload,
    handler time. The vCPU threads only hand records to a `TraceWriter`; its thread writes them."""

    def __init__(self, fd: int) -> None:
        # the writer (and json) load only when a trace is asked for: a plain run's start-up skips them
        from vmm.runner.tracewriter import TraceWriter, json_line

        self._json_line = json_line
        self.writer = TraceWriter(fd, self._format)
        self.start_ns = time.perf_counter_ns()  # CLOCK_MONOTONIC, as every record's time stamp

    def wrap(self, dispatch: Dispatch) -> Dispatch:
        clock = time.perf_counter_ns
        put = self.writer.put
        io_class = IoExit

        def traced(ex: Exit) -> Verdict:
            t0 = clock()
            verdict = dispatch(ex)
            t1 = clock()
            if ex.__class__ is io_class:  # the most frequent exit: plain values, no dict
                io: Any = ex
                put((_IO, t0, t1, io.vcpu.index, io.rip, io.port, io.size, io.is_write, io.value, io.count, verdict))
            else:
                put((_EXIT, t0, t1, ex.snapshot(), verdict))
            return verdict

        return traced

    def note(self, kind: str, **fields: Any) -> None:
        """A trace line that is not an exit (unhandled port, rejected guest request, ...)."""
        self.writer.put((_NOTE, time.perf_counter_ns(), kind, fields))

    def start(self) -> None:
        self.writer.start()

    def finish(self) -> str | None:
        """Write what is left; the end-of-run line if records were dropped."""
        self.writer.finish()
        return self.writer.summary("trace")

    def _format(self, rec: tuple[Any, ...]) -> str:
        kind, t0 = rec[0], rec[1]
        record: dict[str, Any] = {"t": (t0 - self.start_ns) / 1e9, "mono_ns": t0}
        if kind is _NOTE:
            record["event"] = rec[2]
            record.update(rec[3])
            return self._json_line(record)
        if kind is _IO:
            _, _, t1, vcpu, rip, port, size, write, value, count, verdict = rec
            record.update(vcpu=vcpu, reason=IoExit.name, rip=rip, port=port, size=size, write=write)
            if count != 1:
                record["count"] = count
            record["value"] = value
        else:
            _, _, t1, snapshot, verdict = rec
            record.update(snapshot)
        record["handler_us"] = (t1 - t0) / 1e3
        if verdict is not None:
            record["stop"] = {"status": verdict.status, "reason": verdict.reason}
        return self._json_line(record)


_IO, _EXIT, _NOTE = "io", "exit", "note"
