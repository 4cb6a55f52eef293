"""`--stats` counts exits per reason; `--trace` writes a start line, one JSON line per exit, and the stop."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import guest, pyvmm

from vmm import layout as L

pytestmark = pytest.mark.kvm

MESSAGE = b"Hello from 64-bit long mode\n"
# hello-long: serial_init writes IER, LCR and MCR; each character is one LSR poll (the UART is
# always ready) and one THR write
IO_EXITS = 3 + 2 * len(MESSAGE)


def test_stats_and_trace(tmp_path: Path) -> None:
    trace_path = tmp_path / "trace.jsonl"
    proc = pyvmm("run", "--stats", "--trace", str(trace_path), str(guest("hello-long")))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == MESSAGE

    rows = dict(re.findall(r"^(\w+)\s+(\d+)\s", proc.stderr.decode(), re.MULTILINE))
    assert int(rows["IO"]) == IO_EXITS
    assert int(rows["HLT"]) == 1

    records = [json.loads(line) for line in trace_path.read_text().splitlines()]
    start, records = records[0], records[1:]
    assert start.keys() == {"event", "mono_ns"} and start["event"] == "start"
    for r in records:
        assert {"vcpu", "mono_ns"} <= r.keys(), r
        assert ("reason" in r) != ("event" in r), r
        assert r["vcpu"] == 0
    exits = [r for r in records if "reason" in r]
    assert all({"rip", "dur_ns"} <= r.keys() and r["dur_ns"] > 0 for r in exits)
    times = [r["mono_ns"] for r in records]
    assert times == sorted(times) and times[0] >= start["mono_ns"]

    io = [r for r in exits if r["reason"] == "IO"]
    assert len(io) == IO_EXITS
    assert all("port" in r and "value" in r for r in io)
    # the THR writes, in order, are exactly what the guest printed
    sent = bytes(r["value"] for r in io if r["port"] == L.COM1_PORT and r["write"])
    assert sent == MESSAGE

    # the exit whose handler ended the run, then the stop it decided
    assert records[-2]["reason"] == "HLT"
    assert records[-1] == {"mono_ns": records[-1]["mono_ns"], "vcpu": 0, "event": "stop",
                           "stop": {"status": 0, "reason": "guest halted"}}  # fmt: skip
    assert all(r.get("event") != "stop" for r in records[:-1])
