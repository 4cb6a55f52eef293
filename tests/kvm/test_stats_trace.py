"""`--stats` counts exits per reason; `--trace` writes one JSON line per exit, ending with the stop."""

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
    for r in records:
        assert {"vcpu", "reason", "rip", "t"} <= r.keys(), r
        assert r["vcpu"] == 0
    times = [r["t"] for r in records]
    assert times == sorted(times)

    io = [r for r in records if r["reason"] == "IO"]
    assert len(io) == IO_EXITS
    assert all("port" in r and "value" in r for r in io)
    # the THR writes, in order, are exactly what the guest printed
    sent = bytes(r["value"] for r in io if r["port"] == L.COM1_PORT and r["write"])
    assert sent == MESSAGE

    last = records[-1]
    assert last["reason"] == "HLT"
    assert last["stop"] == {"status": 0, "reason": "guest halted"}
    assert all("stop" not in r for r in records[:-1])
