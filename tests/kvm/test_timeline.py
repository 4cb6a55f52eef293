"""`--timeline`: a Trace Event Format file a viewer opens. It parses as JSON, every event has the
fields the format requires, each vCPU is one named track whose exit slices never overlap, one
slice per exit `--stats-json` counts, SPP violations and the stop as instant events, and a counter
track of exits per second."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from conftest import GUESTS, pyvmm

pytestmark = pytest.mark.kvm

KERNEL = GUESTS / "mb" / "mb-exit-counts.elf"
POLICY = "from vmm.spp.event import Allow\n\n\ndef policy(event):\n    return Allow() if event.subpage == 1 else None\n"
STORES = 6


def _run(tmp_path: Path, timeline: str, smp: int = 2) -> tuple[str, int, dict[str, Any]]:
    policy = tmp_path / "allow-sub-page-1.py"
    policy.write_text(POLICY)
    stats = tmp_path / "stats.json"
    proc = pyvmm("run", "-q", "-smp", str(smp), "-append", f"outs=400 stores={STORES}", "--policy", str(policy),
                 "--stats-json", str(stats), "--timeline", timeline, str(KERNEL), timeout=120)  # fmt: skip
    return proc.stderr.decode(), proc.returncode, json.loads(stats.read_text())


def _ns(us: float) -> int:
    return round(us * 1000)  # the file has nanosecond resolution (3 decimals of µs)


def test_timeline_parses_and_matches_the_statistics(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    stderr, status, stats = _run(tmp_path, str(path))
    assert status == 57, stderr
    events = json.loads(path.read_text())
    assert isinstance(events, list) and events
    for e in events:
        assert {"ph", "ts", "pid", "tid", "name"} <= e.keys(), e
        assert isinstance(e["ts"], int | float) and isinstance(e["tid"], int) and e["pid"] == 1, e
        if e["ph"] == "X":
            assert isinstance(e["dur"], int | float) and e["dur"] >= 0, e

    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {0: "vCPU 0", 1: "vCPU 1"}

    slices: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            slices[e["tid"]].append(e)
    for tid, track in slices.items():  # one vCPU never handles two exits at once
        track.sort(key=lambda e: e["ts"])
        for a, b in pairwise(track):
            assert _ns(a["ts"]) + _ns(a["dur"]) <= _ns(b["ts"]), (tid, a, b)

    assert sum(len(t) for t in slices.values()) == stats["exits"]
    for v in stats["vcpus"]:
        track = slices[v["vcpu"]]
        assert Counter(e["name"] for e in track) == {n: r["count"] for n, r in v["reasons"].items()}
        io = [e for e in track if e["name"] == "IO"]
        assert all({"port", "size", "value", "write"} <= e["args"].keys() for e in io)
        # the guest's work: outb of the loop counter to the UART scratch register
        assert sum(1 for e in io if e["args"]["port"] == 0x3FF) == (v["vcpu"] + 1) * 400
        mmio = [e for e in track if e["name"] == "MMIO"]
        assert mmio and all({"address", "size", "value", "write"} <= e["args"].keys() for e in mmio)

        spp = Counter(e["args"]["verdict"] for e in events if e["ph"] == "i" and e["tid"] == v["vcpu"]
                      and e["name"].startswith("SPP"))  # fmt: skip
        assert spp == v["spp"] == {"Allow": (v["vcpu"] + 1) * STORES, "Deny": (v["vcpu"] + 1) * STORES}

    # every vCPU's track ends with the run's stop: vCPU 0 wrote the exit port, vCPU 1 was kicked out
    stops = [e for e in events if e["ph"] == "i" and e["name"].startswith("stop")]
    assert sorted(e["tid"] for e in stops) == [0, 1], stops
    for e in stops:
        assert "debug-exit" in e["args"]["reason"] and e["args"]["status"] == 57
        assert _ns(e["ts"]) >= max(_ns(s["ts"]) + _ns(s["dur"]) for s in slices[e["tid"]])

    counters = [e for e in events if e["ph"] == "C"]
    assert counters and all(e["name"] == "exits per second" for e in counters)
    assert max(e["args"]["exits/s"] for e in counters) > 0


def test_timeline_on_a_full_disk_drops_and_the_run_goes_on(tmp_path: Path) -> None:
    stderr, status, stats = _run(tmp_path, "/dev/full")
    assert status == 57, stderr
    line = re.fullmatch(r"pyvmm: timeline: (\d+) of (\d+) records dropped \(No space left on device\)", stderr.strip())
    assert line is not None, stderr
    assert int(line.group(1)) == int(line.group(2)) >= stats["exits"]
