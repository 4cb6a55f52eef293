"""`--stats` and `--stats-json` per vCPU: mb-exit-counts at -smp 2 makes a number of port exits,
MMIO exits and SPP events per vCPU that follows from its source (guests/mb/mb-exit-counts.c), and
the statistics must show exactly those, per vCPU and per SPP verdict."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import GUESTS, one_line_error, pyvmm

pytestmark = pytest.mark.kvm

KERNEL = GUESTS / "mb" / "mb-exit-counts.elf"
OUTS, STORES = 700, 9
# sub-page 1 of the protected page is allowed by this policy; sub-page 2 gets the default, Deny
POLICY = "from vmm.spp.event import Allow\n\n\ndef policy(event):\n    return Allow() if event.subpage == 1 else None\n"


def _run(tmp_path: Path, *extra: str) -> tuple[bytes, str, int]:
    policy = tmp_path / "allow-sub-page-1.py"
    policy.write_text(POLICY)
    proc = pyvmm("run", "-smp", "2", "-append", f"outs={OUTS} stores={STORES}", "--policy", str(policy), *extra,
                 str(KERNEL), timeout=120)  # fmt: skip
    return proc.stdout, proc.stderr.decode(), proc.returncode


def expected_io(stdout: bytes, rank: int) -> int:
    """Port exits of the CPU of `rank`, from the guest's own accounting (its header comment)."""
    work = (rank + 1) * OUTS
    if rank > 0:
        return work
    # serial_init's 3 writes, an LSR read and a THR write per byte printed, SPP_PROTECT, the exit port
    return work + 3 + 2 * len(stdout) + 1 + 1


def test_two_vcpus_counts_per_vcpu_and_verdict(tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    stdout, stderr, status = _run(tmp_path, "--stats", "--stats-json", str(out))
    assert status == 57, stderr
    text = stdout.decode()
    for rank in (0, 1):  # the guest saw the allowed stores land and the denied ones dropped
        n = (rank + 1) * STORES
        assert f"cpu {rank}: outs {(rank + 1) * OUTS}, allowed {n}, denied 0\n" in text, text
    assert text.endswith("exit-counts: done\n")

    stats: dict[str, Any] = json.loads(out.read_text())
    assert stats["format"] == "pyvmm-stats" and stats["version"] == 1
    vcpus = {v["vcpu"]: v for v in stats["vcpus"]}
    assert sorted(vcpus) == [0, 1]
    for rank in (0, 1):
        v = vcpus[rank]
        stores = (rank + 1) * STORES
        assert v["reasons"]["IO"]["count"] == expected_io(stdout, rank)
        assert v["reasons"]["MMIO"]["count"] == 2 * stores  # one exit per store into the protected page
        assert v["spp"] == {"Allow": stores, "Deny": stores}
        assert v["spp_events"] == 2 * stores
        # kicks (the SPP_PROTECT pausing the other vCPU, the stop) are the only other exits
        assert set(v["reasons"]) <= {"IO", "MMIO", "INTR"}, v["reasons"]
        assert v["exits"] == sum(r["count"] for r in v["reasons"].values())
        assert v["handler_ns"] == sum(r["handler_ns"] for r in v["reasons"].values()) > 0
    for name, total in stats["reasons"].items():  # totals are the sums of the vCPUs' rows
        assert total["count"] == sum(v["reasons"].get(name, {"count": 0})["count"] for v in vcpus.values())
    assert stats["exits"] == sum(v["exits"] for v in vcpus.values())
    assert stats["spp"] == {"Allow": 3 * STORES, "Deny": 3 * STORES}
    assert re.search(rf"after {stats['exits']} exits in", stderr), stderr

    # the table on stderr shows the same figures, per vCPU beside the totals
    for rank in (0, 1):
        v = vcpus[rank]
        block = re.search(rf"^  vCPU {rank}: (\d+) exits, [\d.]+ ms in handlers\n((?:    .*\n)+)", stderr, re.M)
        assert block is not None, stderr
        assert int(block.group(1)) == v["exits"]
        rows = dict(re.findall(r"^    (\w+)\s+(\d+)\s", block.group(2), re.M))
        assert {k: int(c) for k, c in rows.items()} == {k: r["count"] for k, r in v["reasons"].items()}
        spp_row = re.search(rf"^  vCPU {rank}\s+(\d+)\s+(\d+)\s+(\d+)$", stderr, re.M)
        assert spp_row is not None and [int(g) for g in spp_row.groups()] == [v["spp_events"], v["spp"]["Allow"],
                                                                             v["spp"]["Deny"]]  # fmt: skip
    assert re.search(r"^SPP events\s+total\s+Allow\s+Deny$", stderr, re.M), stderr


def test_stats_json_alone_prints_no_table(tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    _, stderr, status = _run(tmp_path, "-q", "--stats-json", str(out))
    assert status == 57, stderr
    assert "exit reason" not in stderr and "SPP events" not in stderr
    assert json.loads(out.read_text())["vcpus"][1]["reasons"]["IO"]["count"] == 2 * OUTS


def test_stats_json_that_cannot_be_written(tmp_path: Path) -> None:
    _, stderr, status = _run(tmp_path, "-q", "--stats-json", "/dev/full")
    assert status == 100, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("pyvmm:")]
    assert lines == ["pyvmm: --stats-json '/dev/full' could not be written: No space left on device"], stderr
    assert "Traceback" not in stderr


def test_stats_json_into_a_directory_is_refused(tmp_path: Path) -> None:
    proc = pyvmm("run", "--stats-json", str(tmp_path), str(KERNEL))
    line = one_line_error(proc, 2)
    assert "--stats-json" in line and "directory" in line
