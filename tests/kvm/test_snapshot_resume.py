"""Snapshot and resume across processes: `pyvmm run --snapshot-at P --snapshot-to F` prints what
the guest printed up to P and ends with status 0; `pyvmm restore F` prints the rest. Joined, the
two outputs equal the uninterrupted run's byte for byte, and the restored run ends with its
status. Every guest kind: flat guests in each CPU mode (registers, RAM pages and the UART carry
the state), a multiboot kernel with the in-kernel PIC and PIT ticking, SMP kernels with 2 and 4
vCPUs cut while APs wait in spin loops or for their SIPI, and an SPP guest whose policy counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GUESTS, ROOT, guest

pytestmark = pytest.mark.kvm

HERE = Path(__file__).parent / "snapshot_files"


def pyvmm_env(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "vmm.cli", *args], cwd=ROOT, capture_output=True, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def resumed(run_args: list[str], point: str, tmp_path: Path, restore_args: list[str] | None = None,
            env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[bytes], bytes, int]:  # fmt: skip
    """(uninterrupted run, first part + restored part, restored status)."""
    whole = pyvmm_env("run", "-q", *run_args, env=env)
    snap = tmp_path / "guest.snap"
    first = pyvmm_env("run", "-q", *run_args, "--snapshot-at", point, "--snapshot-to", str(snap), env=env)
    assert first.returncode == 0, first.stderr.decode()
    assert f"snapshot at {point} written to {snap}" in first.stderr.decode()
    second = pyvmm_env("restore", "-q", str(snap), *(restore_args or []), env=env)
    assert "Traceback" not in second.stderr.decode()
    return whole, first.stdout + second.stdout, second.returncode


FLAT = [
    ("snap-real", ["--mode", "real"], ["sync:1", "sync:4"], 0),
    ("snap-prot", ["--mode", "protected"], ["sync:2", "sync:7"], 0),
    ("snap-long", [], ["sync:1", "sync:5", "exits:40"], 0),
]


@pytest.mark.parametrize(
    ("name", "args", "point", "status"),
    [(n, a, p, s) for n, a, points, s in FLAT for p in points],
)
def test_flat_guests_resume_in_a_new_process(name: str, args: list[str], point: str, status: int,
                                             tmp_path: Path) -> None:  # fmt: skip
    whole, joined, restored_status = resumed([str(guest(name)), *args], point, tmp_path)
    assert whole.returncode == status
    assert b"done" in whole.stdout  # the guest ran to its end
    assert joined == whole.stdout
    assert restored_status == whole.returncode


MB = GUESTS / "mb"


@pytest.mark.parametrize(
    ("kernel", "args", "point"),
    [
        ("mb-timer.elf", [], "exits:60"),  # in the middle of the first line, before the PIT ticks
        ("mb-timer.elf", [], "exits:110"),  # the first line printed: the PIT is programmed and ticking
        ("mb-smp.elf", ["-smp", "2"], "exits:100"),
        ("mb-smp.elf", ["-smp", "2"], "exits:200"),
        ("mb-smp.elf", ["-smp", "4"], "exits:70"),  # APs not yet started: INIT/SIPI after the restore
        ("mb-smp.elf", ["-smp", "4"], "exits:230"),  # some APs have reported, the rest wait their turn
    ],
)
def test_multiboot_and_smp_kernels_resume_in_a_new_process(kernel: str, args: list[str], point: str,
                                                          tmp_path: Path) -> None:  # fmt: skip
    whole, joined, restored_status = resumed([str(MB / kernel), *args], point, tmp_path)
    assert whole.returncode in (41, 43)  # mb-smp's and mb-timer's success codes
    assert joined == whole.stdout
    assert restored_status == whole.returncode


def test_an_spp_guest_and_a_counting_policy_resume_where_they_stopped(tmp_path: Path) -> None:
    """count-and-stop stops at the 3rd violation (of 4 in the input); the snapshot is taken at
    the 1st. The restored run stops at the same violation only if the policy's count came back
    with the snapshot (restarted from zero it would see 3 and run on to DONE, status 0), and it
    is denied only if the protection came back."""
    image = guest("fuzz-parser")
    table = _symbol(image.with_suffix(".elf"), "table_page")
    run_args = [str(image), "--spp", f"{table:#x}:0xfffffffd", "--policy", "count-and-stop",
                "--handlers", str(HERE / "fuzz_input.py")]  # fmt: skip
    env = {"PYVMM_SPP_LIMIT": "3"}
    whole, joined, restored_status = resumed(
        run_args, "spp:1", tmp_path, ["--policy", "count-and-stop"], env=env
    )
    assert whole.returncode == 22, whole.stderr.decode()
    assert "3 SPP violations (limit 3)" in whole.stderr.decode()
    assert restored_status == 22
    assert joined == whole.stdout


def _symbol(elf: Path, name: str) -> int:
    out = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {elf}")


def test_snapshot_and_continue_runs_on_and_leaves_a_file_that_resumes(tmp_path: Path) -> None:
    image = str(guest("snap-long"))
    whole = pyvmm_env("run", "-q", image)
    snap = tmp_path / "mid.snap"
    cont = pyvmm_env("run", "-q", image, "--snapshot-at", "sync:4", "--snapshot-to", str(snap),
                     "--snapshot-and-continue")  # fmt: skip
    assert cont.returncode == whole.returncode == 0
    assert cont.stdout == whole.stdout  # taking the snapshot changed nothing the guest does
    tail = pyvmm_env("restore", "-q", str(snap))
    assert tail.returncode == 0
    assert whole.stdout.endswith(tail.stdout) and tail.stdout.startswith(b"round 5:")


def test_a_restored_run_can_be_snapshotted_again(tmp_path: Path) -> None:
    image = str(guest("snap-prot"))
    whole = pyvmm_env("run", "-q", image, "--mode", "protected")
    first, second = tmp_path / "a.snap", tmp_path / "b.snap"
    one = pyvmm_env("run", "-q", image, "--mode", "protected", "--snapshot-at", "sync:2", "--snapshot-to", str(first))
    two = pyvmm_env("restore", "-q", str(first), "--snapshot-at", "sync:3", "--snapshot-to", str(second))
    three = pyvmm_env("restore", "-q", str(second))
    assert (one.returncode, two.returncode, three.returncode) == (0, 0, 0)
    assert one.stdout + two.stdout + three.stdout == whole.stdout
    assert two.stdout.startswith(b"round 3:") and three.stdout.startswith(b"round 6:")
