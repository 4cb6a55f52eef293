"""The statistics and the timeline on synthetic exits (no KVM): counts and handler time per vCPU
and reason, SPP events per vCPU and verdict, the JSON figures and the table agree; the timeline's
events, from the recording run loop, are whole, per-vCPU slices in order, instants for the stops
and SPP events."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from fakes import SyntheticVcpu, io_exit, mmio_exit, stand_in_run

from vmm.kvm.exits import Exit, IoExit, make_view
from vmm.runner.observe import ExitStats
from vmm.runner.records import recording_loop
from vmm.runner.timeline import ExitTimeline
from vmm.spp.event import Allow, Deny, SppEvent
from vmm.verdict import Stop, Verdict


def _event(vcpu: int) -> SppEvent:
    return SppEvent(gpa=0x104080, page_mask=0, vcpu=vcpu, rip=0x1000, backend="software", write_gpa=0x104080, size=4)


def _feed(dispatch: Any, vcpus: list[SyntheticVcpu], per_vcpu: list[int]) -> None:
    for v, n in zip(vcpus, per_vcpu, strict=True):
        for i in range(n):
            if i % 3:
                dispatch(io_exit(v, 0x3FF, value=i & 0xFF))
            else:
                dispatch(mmio_exit(v, 0x9000, 4, write=True, data=b"\1\2\3\4"))


def _ok(ex: Exit) -> Verdict:
    return None


def test_stats_per_vcpu_reason_and_verdict() -> None:
    vcpus = [SyntheticVcpu(index=0), SyntheticVcpu(index=1)]
    stats = ExitStats(3)  # vCPU 2 makes no exit and still has its row
    _feed(stats.wrap(_ok), vcpus, [7, 12])
    for verdict, vcpu in [(Allow(), 0), (Deny(), 0), (Deny(), 1), (Deny(), 1)]:
        stats.on_spp(_event(vcpu), verdict)

    assert {k: v[0] for k, v in stats.rows.items()} == {(0, "MMIO"): 3, (0, "IO"): 4, (1, "MMIO"): 4, (1, "IO"): 8}
    assert {k: v[0] for k, v in stats.table.items()} == {"IO": 12, "MMIO": 7}
    figures = stats.as_json()
    assert figures["exits"] == 19 and figures["spp"] == {"Allow": 1, "Deny": 3}
    assert [v["vcpu"] for v in figures["vcpus"]] == [0, 1, 2]
    assert figures["vcpus"][1]["reasons"]["IO"]["count"] == 8 and figures["vcpus"][1]["spp"] == {"Deny": 2}
    assert figures["vcpus"][2] == {"vcpu": 2, "exits": 0, "handler_ns": 0, "reasons": {}, "spp_events": 0, "spp": {}}
    assert json.loads(json.dumps(figures)) == figures

    text = stats.render()
    assert "  vCPU 0: 7 exits" in text and "  vCPU 1: 12 exits" in text and "  vCPU 2: 0 exits" in text
    lines = text.splitlines()
    assert [ln.split() for ln in lines if ln.startswith("  vCPU ") and "exits" not in ln] == [
        ["vCPU", "0", "2", "1", "1"], ["vCPU", "1", "2", "0", "2"], ["vCPU", "2", "0", "0", "0"]]  # fmt: skip
    assert lines[-1].split() == ["all", "4", "1", "3"]


def test_one_vcpu_has_no_per_vcpu_table() -> None:
    stats = ExitStats(1)
    _feed(stats.wrap(_ok), [SyntheticVcpu(index=0)], [4])
    assert "per vCPU" not in stats.render() and stats.render().startswith("exit reason")


class ScriptedVcpu(SyntheticVcpu):
    """A synthetic vCPU that `recording_loop` can run: `run()` plays the next exit of `script`,
    and each reason has one view, as `Vcpu.run` returns."""

    def __post_init__(self) -> None:
        super().__post_init__()
        run = self.kvm_run
        self.script: list[Callable[[], Exit]] = []
        self.reason = 0
        self.views = [make_view(self, run, r) for r in range(64)]  # one per reason, kept
        self._decode = stand_in_run(self, run, self.views, lambda: self.reason)

    def view(self, reason: int) -> Exit:
        self.reason = reason
        return self._decode()

    def run(self) -> Exit:
        return self.script.pop(0)()

    @property
    def sync_gprs(self) -> Any:
        return self.kvm_run.s.regs.regs


def _script(v: ScriptedVcpu, n: int) -> None:
    """`n` exits as _feed makes them, then the port write the handler stops on."""
    for i in range(n):
        if i % 3:
            v.script.append(partial(io_exit, v, 0x3FF, value=i & 0xFF))
        else:
            v.script.append(partial(mmio_exit, v, 0x9000, 4, write=True, data=b"\1\2\3\4"))
    v.script.append(partial(io_exit, v, 0xF4))


def _stop_at_f4(ex: Exit) -> Verdict:
    return Stop(3, "enough") if isinstance(ex, IoExit) and ex.port == 0xF4 else None


def test_timeline_from_synthetic_exits(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        timeline = ExitTimeline(fd, 2)
        vcpus = [ScriptedVcpu(index=0), ScriptedVcpu(index=1)]
        timeline.start()
        loop = recording_loop([timeline.put])
        _script(vcpus[0], 5)
        assert loop(vcpus[0], _stop_at_f4, None) == Stop(3, "enough")
        timeline.on_spp(_event(1), Deny())
        _script(vcpus[1], 9)
        assert loop(vcpus[1], _stop_at_f4, None) == Stop(3, "enough")
        timeline.finish("timeline")
        timeline.close()
    finally:
        os.close(fd)
    events = json.loads(path.read_text())
    assert all({"ph", "ts", "pid", "tid", "name"} <= e.keys() for e in events)
    slices = [e for e in events if e["ph"] == "X"]
    assert [sum(1 for e in slices if e["tid"] == v) for v in (0, 1)] == [6, 10]
    assert all(e["dur"] > 0 for e in slices)
    assert {e["name"] for e in slices} == {"IO", "MMIO"}
    mmio = next(e for e in slices if e["name"] == "MMIO")
    assert mmio["args"] == {"address": 0x9000, "size": 4, "write": True, "value": 0x04030201}
    io = next(e for e in slices if e["name"] == "IO")
    assert io["args"] == {"port": 0x3FF, "size": 1, "value": 1, "write": True}
    instants = [(e["name"], e["tid"]) for e in events if e["ph"] == "i" and e["name"] != "end of run"]
    assert instants == [("stop: enough", 0), ("SPP Deny", 1), ("stop: enough", 1)]
    assert sum(e["args"]["exits/s"] for e in events if e["ph"] == "C") > 0
