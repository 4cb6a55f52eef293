"""Seeing the exits: statistics per vCPU and exit reason (`--stats`, `--stats-json`), and the
records a trace (`--trace`) or a timeline (`--timeline`) is written from.

Each observer wraps the dispatcher's `dispatch` function, so with none enabled the run loop pays
nothing. The recording observers do the least they can on the vCPU thread: two clock reads and
one flat tuple appended to a deque; a writer thread (`vmm.runner.tracewriter`) turns the tuples
into text. The first item of a record is its kind, which picks the writer's template.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vmm.kvm.exits import Exit, IoExit, MmioExit
from vmm.verdict import Verdict

Dispatch = Callable[[Exit], Verdict]

# Record kinds. A port or MMIO exit of the common shapes is a flat tuple of ints the writer can
# format with a template; anything else carries its exit's snapshot (a dict).
IO_OUT, IO_IN, MMIO_WRITE, MMIO_READ, EXIT, STOP, NOTE, SPP = range(8)
# IO_OUT / IO_IN:         (kind, t0, vcpu, rip, port, size, value, handler_ns)
# MMIO_WRITE / MMIO_READ: (kind, t0, vcpu, rip, address, length, data_hex, handler_ns)
# EXIT:                   (kind, t0, vcpu, snapshot, handler_ns)
# STOP:                   (kind, t1, vcpu, status, reason)   right after the exit whose handler stopped
# NOTE:                   (kind, t, event, fields)           an unhandled port, a rejected request
# SPP:                    (kind, t, vcpu, gpa, verdict_name, description)


class ExitStats:
    """Count and handler time per vCPU and exit reason, like `perf kvm stat report`, and SPP
    events per vCPU and verdict. Every key starts with the vCPU's index, so no two vCPU threads
    ever update the same counter."""

    def __init__(self, vcpus: int = 1) -> None:
        self.vcpus = vcpus  # rows for vCPUs 0..vcpus-1 even when one made no exit
        self.rows: dict[tuple[int, str], list[int]] = {}  # (vcpu, reason) -> [count, handler ns]
        self.spp: dict[tuple[int, str], int] = {}  # (vcpu, verdict name) -> events

    def wrap(self, dispatch: Dispatch) -> Dispatch:
        clock = time.perf_counter_ns
        rows = self.rows

        def timed(ex: Exit) -> Verdict:
            t0 = clock()
            verdict = dispatch(ex)
            dt = clock() - t0
            key = (ex.vcpu.index, ex.name)
            row = rows.get(key)
            if row is None:
                row = rows[key] = [0, 0]
            row[0] += 1
            row[1] += dt
            return verdict

        return timed

    def on_spp(self, event: Any, verdict: Any) -> None:
        """An SPP event judged (the SPP controller calls it on the vCPU thread)."""
        key = (int(event.vcpu), type(verdict).__name__)
        self.spp[key] = self.spp.get(key, 0) + 1

    # --- what the end of a run shows ----------------------------------------------------------
    @property
    def table(self) -> dict[str, list[int]]:
        """Totals per reason over every vCPU: reason -> [count, handler ns]."""
        out: dict[str, list[int]] = {}
        for (_, name), (count, ns) in self.rows.items():
            row = out.setdefault(name, [0, 0])
            row[0] += count
            row[1] += ns
        return out

    def vcpu_indices(self) -> list[int]:
        seen = {v for v, _ in self.rows} | {v for v, _ in self.spp}
        return sorted(seen | set(range(self.vcpus)))

    def per_vcpu(self, vcpu: int) -> dict[str, list[int]]:
        return {name: row for (v, name), row in self.rows.items() if v == vcpu}

    def verdicts(self) -> list[str]:
        return sorted({name for _, name in self.spp})

    def as_json(self) -> dict[str, Any]:
        """The figures `--stats-json` writes (the README documents this schema)."""

        def reasons(table: dict[str, list[int]]) -> dict[str, dict[str, int]]:
            return {n: {"count": c, "handler_ns": ns} for n, (c, ns) in sorted(table.items())}

        def spp_of(vcpu: int | None) -> dict[str, int]:
            return {n: c for (v, n), c in sorted(self.spp.items()) if vcpu is None or v == vcpu}

        totals = self.table
        vcpus = []
        for v in self.vcpu_indices():
            mine = self.per_vcpu(v)
            spp = spp_of(v)
            vcpus.append({
                "vcpu": v, "exits": sum(r[0] for r in mine.values()), "handler_ns": sum(r[1] for r in mine.values()),
                "reasons": reasons(mine), "spp_events": sum(spp.values()), "spp": spp,
            })  # fmt: skip
        spp_all: dict[str, int] = {}
        for (_, n), c in self.spp.items():
            spp_all[n] = spp_all.get(n, 0) + c
        return {
            "format": "pyvmm-stats", "version": 1,
            "exits": sum(r[0] for r in totals.values()), "handler_ns": sum(r[1] for r in totals.values()),
            "reasons": reasons(totals), "spp_events": sum(spp_all.values()), "spp": dict(sorted(spp_all.items())),
            "vcpus": vcpus,
        }  # fmt: skip

    def render(self) -> str:
        totals = self.table
        lines = _reason_rows("exit reason", totals, "")
        many = len(self.vcpu_indices()) > 1
        if many:  # with one vCPU its table is the totals
            lines.append("")
            lines.append("per vCPU")
            for v in self.vcpu_indices():
                mine = self.per_vcpu(v)
                count, ns = sum(r[0] for r in mine.values()), sum(r[1] for r in mine.values())
                lines.append(f"  vCPU {v}: {count} exits, {ns / 1e6:.3f} ms in handlers")
                if mine:
                    lines += _reason_rows("exit reason", mine, "    ")[1:]
        if self.spp:
            verdicts = self.verdicts()
            lines.append("")
            lines.append(f"{'SPP events':<14}{'total':>10}" + "".join(f"{n:>19}" for n in verdicts))
            rows: list[tuple[str, int | None]] = [(f"vCPU {v}", v) for v in self.vcpu_indices()] if many else []
            for label, who in [*rows, ("all", None)]:
                counts = [sum(c for (vv, n), c in self.spp.items() if n == name and (who is None or vv == who))
                          for name in verdicts]  # fmt: skip
                lines.append(f"  {label:<12}{sum(counts):>10}" + "".join(f"{c:>19}" for c in counts))
        return "\n".join(lines)


def _reason_rows(title: str, table: dict[str, list[int]], indent: str) -> list[str]:
    total = sum(r[0] for r in table.values()) or 1
    width = 18 - len(indent)
    lines = [f"{indent}{title:<{width}}{'count':>10}{'%':>8}{'handler total':>16}{'mean':>12}"]
    for name, (count, ns) in sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0])):
        lines.append(
            f"{indent}{name:<{width}}{count:>10}{100 * count / total:>7.1f}%{ns / 1e6:>13.3f} ms"
            f"{ns / count / 1e3:>9.2f} µs"
        )
    return lines


class ExitRecorder:
    """Hands one record per exit (and per note, stop and SPP event) to a writer thread; the
    subclass says how records become text (`format_batch`) and what goes before and after."""

    def __init__(self, fd: int) -> None:
        # the writer loads only when a trace is asked for: a plain run's start-up skips it
        from vmm.runner.tracewriter import TraceWriter

        self.start_ns = time.perf_counter_ns()  # CLOCK_MONOTONIC, as every record's time stamp
        self.writer = TraceWriter(fd, self.format_batch, self.header, self.trailer)

    def wrap(self, dispatch: Dispatch) -> Dispatch:
        clock = time.perf_counter_ns
        put = self.writer.put
        io_class, mmio_class = IoExit, MmioExit

        def recorded(ex: Exit) -> Verdict:
            t0 = clock()
            verdict = dispatch(ex)
            t1 = clock()
            cls = ex.__class__
            if cls is io_class:  # the most frequent exit: plain values, no dict
                io: Any = ex
                if io.count == 1:
                    kind = IO_OUT if io.is_write else IO_IN
                    put((kind, t0, io.vcpu.index, io.rip, io.port, io.size, io.value, t1 - t0))
                else:
                    put((EXIT, t0, io.vcpu.index, io.snapshot(), t1 - t0))
            elif cls is mmio_class:
                mm: Any = ex
                if mm.is_write:
                    put((MMIO_WRITE, t0, mm.vcpu.index, mm.rip, mm.address, mm.length, mm.data.hex(), t1 - t0))
                else:
                    put((MMIO_READ, t0, mm.vcpu.index, mm.rip, mm.address, mm.length, "", t1 - t0))
            else:
                put((EXIT, t0, ex.vcpu.index, ex.snapshot(), t1 - t0))
            if verdict is not None:
                put((STOP, t1, ex.vcpu.index, verdict.status, verdict.reason))
            return verdict

        return recorded

    def note(self, kind: str, **fields: Any) -> None:
        """A record that is not an exit (unhandled port, rejected guest request, ...)."""
        self.writer.put((NOTE, time.perf_counter_ns(), kind, fields))

    def on_spp(self, event: Any, verdict: Any) -> None:
        """An SPP event judged (the SPP controller calls it on the vCPU thread)."""
        self.writer.put((SPP, time.perf_counter_ns(), int(event.vcpu), event.gpa, type(verdict).__name__,
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

    def format_batch(self, batch: list[Any]) -> str:
        raise NotImplementedError


class ExitTrace(ExitRecorder):
    """JSON lines: a first line with the run's start, then one object per exit, stop, note and
    SPP event, each with its CLOCK_MONOTONIC time stamp and its vCPU. Port and MMIO exits are
    formatted many at a time through one %-template per kind (the values are ints and fixed
    keys, so the template is valid JSON); the rest through json."""

    def __init__(self, fd: int) -> None:
        import json  # only a traced run needs it

        self._dumps = json.dumps
        super().__init__(fd)

    def header(self) -> str:
        return self._line({"event": "start", "mono_ns": self.start_ns})

    def format_batch(self, batch: list[Any]) -> str:
        from itertools import chain

        templates, fast = _TRACE_TEMPLATES, _FAST
        parts = [r if r[0] in fast else (EXIT, self._slow(r)) for r in batch]
        try:
            return "".join([templates[r[0]] for r in parts]) % tuple(chain.from_iterable(parts))
        except TypeError:  # a None where a number goes (no sync regs: no RIP): one record at a time
            return "".join(self._slow(r) for r in batch)

    def _slow(self, r: tuple[Any, ...]) -> str:
        kind = r[0]
        record: dict[str, Any]
        if kind in (IO_OUT, IO_IN):
            _, t0, vcpu, rip, port, size, value, dt = r
            record = {"mono_ns": t0, "vcpu": vcpu, "reason": "IO", "rip": rip, "port": port, "size": size,
                      "write": kind == IO_OUT, "value": value, "handler_ns": dt}  # fmt: skip
        elif kind in (MMIO_WRITE, MMIO_READ):
            _, t0, vcpu, rip, address, length, data, dt = r
            record = {"mono_ns": t0, "vcpu": vcpu, "reason": "MMIO", "rip": rip, "address": address, "length": length,
                      "write": kind == MMIO_WRITE}  # fmt: skip
            if kind == MMIO_WRITE:
                record["data"] = data
            record["handler_ns"] = dt
        elif kind == EXIT:
            _, t0, vcpu, snapshot, dt = r
            record = {"mono_ns": t0, **snapshot, "handler_ns": dt}
        elif kind == STOP:
            _, t1, vcpu, status, reason = r
            # nested, so "reason" at the top level always means an exit's reason
            record = {"mono_ns": t1, "vcpu": vcpu, "event": "stop", "stop": {"status": status, "reason": reason}}
        elif kind == SPP:
            _, t, vcpu, gpa, verdict, text = r
            record = {"mono_ns": t, "vcpu": vcpu, "event": "spp", "gpa": gpa, "verdict": verdict, "what": text}
        else:
            _, t, event, fields = r
            record = {"mono_ns": t, "event": event, **fields}
        return self._line(record)

    def _line(self, record: dict[str, Any]) -> str:
        return self._dumps(record, separators=(", ", ": ")) + "\n"


# %.0s swallows the kind; the rest are the record's fields in order
_TRACE_TEMPLATES = {
    IO_OUT: '%.0s{"mono_ns": %d, "vcpu": %d, "reason": "IO", "rip": %d, "port": %d, "size": %d, "write": true, '
    '"value": %d, "handler_ns": %d}\n',
    IO_IN: '%.0s{"mono_ns": %d, "vcpu": %d, "reason": "IO", "rip": %d, "port": %d, "size": %d, "write": false, '
    '"value": %d, "handler_ns": %d}\n',
    MMIO_WRITE: '%.0s{"mono_ns": %d, "vcpu": %d, "reason": "MMIO", "rip": %d, "address": %d, "length": %d, '
    '"write": true, "data": "%s", "handler_ns": %d}\n',
    MMIO_READ: '%.0s{"mono_ns": %d, "vcpu": %d, "reason": "MMIO", "rip": %d, "address": %d, "length": %d, '
    '"write": false%.0s, "handler_ns": %d}\n',
    EXIT: "%.0s%s",  # a line formatted by json, passed through
}
_FAST = frozenset((IO_OUT, IO_IN, MMIO_WRITE, MMIO_READ))
