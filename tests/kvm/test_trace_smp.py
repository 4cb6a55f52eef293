"""`--trace` with several vCPUs: one writer, so every line is a whole JSON object and every exit
`--stats` counts has its record; a trace file that cannot be written drops records, the run goes
on and says how many."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import GUESTS, pyvmm

pytestmark = pytest.mark.kvm

ATOMICS = GUESTS / "mb" / "mb-atomics.elf"
COUNTERS = "0x00104000"  # the counters' page mb-atomics prints; protected, every write allowed
ALLOW = "from vmm.spp.event import Allow\n\n\ndef policy(event):\n    return Allow()\n"


def _run(tmp_path: Path, trace: str) -> tuple[str, int]:
    policy = tmp_path / "allow.py"
    policy.write_text(ALLOW)
    proc = pyvmm("run", "-smp", "4", "-append", "iter=1000", "--spp", f"{COUNTERS}:0", "--policy", str(policy),
                 "--stats", "--trace", trace, str(ATOMICS), timeout=120)  # fmt: skip
    assert proc.stdout.decode().endswith("mb-atomics: ok\n"), proc.stdout.decode()
    return proc.stderr.decode(), proc.returncode


def _stats(stderr: str) -> Counter[str]:
    return Counter({k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)\s+\d", stderr, re.MULTILINE)})


def test_four_vcpus_trace_is_whole_and_complete(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    stderr, status = _run(tmp_path, str(trace))
    assert status == 49, stderr
    assert "dropped" not in stderr
    raw = trace.read_bytes()
    assert b"\0" not in raw
    records = [json.loads(line) for line in raw.decode().splitlines()]  # every line parses
    assert records[0]["event"] == "start"
    exits = [r for r in records if "reason" in r]
    assert Counter(r["reason"] for r in exits) == _stats(stderr)
    assert len(exits) == sum(_stats(stderr).values()) > 1000  # the MMIO count varies from run to run
    per_vcpu = Counter(r["vcpu"] for r in exits)
    assert sorted(per_vcpu) == [0, 1, 2, 3]
    page = int(COUNTERS, 16)
    trapped = [r for r in exits if r["reason"] == "MMIO" and page <= r.get("address", -1) < page + 0x1000]
    assert {r["vcpu"] for r in trapped} == {0, 1, 2, 3}  # every vCPU's locked writes reached the trace
    for v in range(4):  # each vCPU's own records are in time order, with a monotonic stamp
        stamps = [r["mono_ns"] for r in exits if r["vcpu"] == v]
        assert stamps == sorted(stamps)


EXIT_COUNTS = GUESTS / "mb" / "mb-exit-counts.elf"
OUTS = 4000  # vCPU r makes (r + 1) * OUTS port exits: 40,000 across four vCPUs, and the BSP's printing


def test_four_vcpus_tens_of_thousands_of_exits(tmp_path: Path) -> None:
    trace, stats_path = tmp_path / "trace.jsonl", tmp_path / "stats.json"
    proc = pyvmm("run", "-q", "-smp", "4", "-append", f"outs={OUTS}", "--stats-json", str(stats_path),
                 "--trace", str(trace), str(EXIT_COUNTS), timeout=300)  # fmt: skip
    stderr = proc.stderr.decode()
    assert proc.returncode == 57, stderr
    assert "dropped" not in stderr
    stats = json.loads(stats_path.read_text())
    assert stats["exits"] >= 40_000
    raw = trace.read_bytes()
    assert b"\0" not in raw
    records = [json.loads(line) for line in raw.decode().splitlines()]  # every line parses
    assert records[0]["event"] == "start"
    exits = [r for r in records if "reason" in r]
    assert len(exits) == stats["exits"]
    for v in stats["vcpus"]:
        mine = [r for r in exits if r["vcpu"] == v["vcpu"]]
        assert len(mine) == v["exits"]
        assert Counter(r["reason"] for r in mine) == {n: r["count"] for n, r in v["reasons"].items()}
        work = [r for r in mine if r["reason"] == "IO" and r["port"] == 0x3FF]
        assert len(work) == (v["vcpu"] + 1) * OUTS
        assert [r["value"] for r in work] == [i & 0xFF for i in range(len(work))]  # in the guest's order
        stamps = [r["mono_ns"] for r in mine]
        assert stamps == sorted(stamps)


def test_unwritable_trace_drops_and_reports(tmp_path: Path) -> None:
    stderr, status = _run(tmp_path, "/dev/full")
    assert status == 49, stderr
    total = sum(_stats(stderr).values())
    lines = [ln for ln in stderr.splitlines() if "dropped" in ln]
    assert len(lines) == 1, stderr
    dropped = re.fullmatch(r"pyvmm: trace: (\d+) of (\d+) records dropped \(No space left on device\)", lines[0])
    assert dropped is not None, lines[0]
    assert int(dropped.group(1)) == int(dropped.group(2)) >= total
    assert "Traceback" not in stderr


def test_trace_on_a_filesystem_that_fills_up(tmp_path: Path) -> None:
    """A 64 KiB tmpfs fills part-way through the run: the lines that fit are whole, the rest are counted."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        trace = mount / "trace.jsonl"
        stderr, status = _run(tmp_path, str(trace))
        assert status == 49, stderr
        records = [json.loads(line) for line in trace.read_text().splitlines()][1:]  # every kept line parses
        dropped = re.search(r"^pyvmm: trace: (\d+) of (\d+) records dropped \(No space left on device\)$", stderr, re.M)
        assert dropped is not None, stderr
        assert 0 < len(records) < int(dropped.group(2))
        assert len(records) + int(dropped.group(1)) == int(dropped.group(2))
        assert int(dropped.group(2)) >= sum(_stats(stderr).values())
    finally:
        subprocess.run(["umount", str(mount)], check=False)
