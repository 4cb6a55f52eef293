"""Seeing the exits: statistics per vCPU and exit reason (`--stats`, `--stats-json`).

It wraps the dispatcher's `dispatch` function like every observer, so without it the run loop
pays nothing. The trace and the timeline are recorded by `vmm.runner.records`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vmm.kvm.exits import Exit
from vmm.verdict import Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

Dispatch = Callable[[Exit], Verdict]

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
