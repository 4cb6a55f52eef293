"""Seeing the exits: a per-reason statistics table (`--stats`) and a JSON-lines trace (`--trace`).

Both wrap the dispatcher's `dispatch` function, so with neither enabled the run loop pays nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO, Any

from vmm.errors import OutputError
from vmm.kvm.exits import Exit
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
    """One JSON object per exit: time, vCPU, reason, RIP, the decoded payload, handler time."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.start = time.perf_counter()

    def wrap(self, dispatch: Dispatch) -> Dispatch:
        clock = time.perf_counter
        write = self.out.write

        def traced(ex: Exit) -> Verdict:
            t0 = clock()
            verdict = dispatch(ex)
            record: dict[str, Any] = {"t": round(t0 - self.start, 9), **ex.snapshot()}
            record["handler_us"] = round((clock() - t0) * 1e6, 3)
            if verdict is not None:
                record["stop"] = {"status": verdict.status, "reason": verdict.reason}
            try:
                write(json.dumps(record) + "\n")
            except OSError as e:
                raise OutputError(f"cannot write the trace: {e.strerror}") from None
            return verdict

        return traced

    def note(self, kind: str, **fields: Any) -> None:
        """A trace line that is not an exit (unhandled port, rejected guest request, ...)."""
        line = json.dumps({"t": round(time.perf_counter() - self.start, 9), "event": kind, **fields}) + "\n"
        try:
            self.out.write(line)
        except OSError as e:
            raise OutputError(f"cannot write the trace: {e.strerror}") from None
