"""Timer-driven kernels across a snapshot: the ticks go on after the restore at their period, with
no burst of interrupts owed for the time the machine spent saved or waiting to run.

`mb-ticks` stamps each tick with the TSC and the PM timer and prints the spacings at the end
(after a deterministic part). It runs with the PIT through the PICs, the LAPIC timer in periodic
mode and the LAPIC timer in TSC-deadline mode. The host sleeps between the snapshot and the
restore, so a restore that let the timers count through that time would deliver a burst.

The check counts ticks against the time the guest ran: by every tick, the guest must not have
received more ticks than periods have passed, give or take two (a tick the host delivered late
makes the next one look early). Ticks the in-kernel PIT re-injects after the guest's vCPU thread
waited for a host CPU (a gap of three periods, then two quick ones) never run ahead of the time;
a burst owed for the time the machine spent saved or waiting to run does. The gap across the
snapshot counts as one period: the guest was not running through it.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GUESTS, ROOT

from vmm import Machine
from vmm.snapshot.state import Snapshot

pytestmark = pytest.mark.kvm

KERNEL = str(GUESTS / "mb" / "mb-ticks.elf")
PM_HZ = 3_579_545
PM_WRAP = 1 << 24
SAVED_FOR = 1.0  # seconds between the snapshot and the restore (the PM timer wraps after 4.7 s)
CUT = "sync:12"  # after the 12th of 30 ticks
STATUS = (0x21 << 1) | 1
TIMERS = ["pit", "lapic", "deadline"]


def pyvmm(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "vmm.cli", *args], cwd=ROOT, capture_output=True, timeout=60,
                          env=dict(os.environ))  # fmt: skip


def split(stdout: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """(the deterministic part, [(TSC counts, PM counts) between one tick and the next])."""
    head, sep, tail = stdout.partition(b"spacing (tsc pm):\n")
    assert sep, stdout.decode()
    return head, [(int(t, 16), int(p, 16)) for t, p in (line.split() for line in tail.decode().splitlines())]


def ticks_ahead_of_time(tsc: list[int], period: float, cut: int | None) -> list[int]:
    """Indices of ticks by which the guest had more ticks than periods passed, plus two."""
    ran, bad = 0.0, []
    for i, d in enumerate(tsc):
        ran += period if i == cut else d
        if (i + 1) * period > ran + 2 * period:
            bad.append(i)
    return bad


def pm_counts_apart(tsc: float, pm: int) -> float:
    """How far a TSC interval (in PM counts) and a PM-timer interval disagree, modulo the wrap."""
    diff = (tsc - pm) % PM_WRAP
    return min(diff, PM_WRAP - diff)


def check_spacing(spacings: list[tuple[int, int]], *, saved_for: float | None) -> None:
    tsc = [t for t, _ in spacings]
    period = statistics.median(tsc)  # TSC counts per tick
    tsc_per_pm = statistics.median(t / p for t, p in spacings if p)
    ms = " ".join(f"{t / tsc_per_pm / PM_HZ * 1000:.1f}" for t in tsc)
    assert 0.5 * PM_HZ / 100 < period / tsc_per_pm < 1.5 * PM_HZ / 100, f"the ticks are not 10 ms apart: {ms}"
    cut = None
    if saved_for is not None:
        cut = max(range(len(tsc)), key=tsc.__getitem__)
        assert tsc[cut] / tsc_per_pm / PM_HZ >= saved_for, f"no gap of {saved_for} s across the snapshot: {ms}"
    bad = ticks_ahead_of_time(tsc, period, cut)
    assert not bad, f"more ticks than time at {bad} (ms between ticks: {ms})"
    # The PM timer agrees with the TSC over the whole run and across the snapshot. Over a few
    # ticks, not one: the ISR reads the TSC, then the PM timer through an exit, and an exit the
    # host serves late moves one stamp but not the next.
    windows = [(0, len(spacings))] + ([] if cut is None else [(max(0, cut - 1), min(len(tsc), cut + 2))])
    for lo, hi in windows:
        apart = pm_counts_apart(sum(tsc[lo:hi]) / tsc_per_pm, sum(p for _, p in spacings[lo:hi]))
        assert apart < PM_HZ / 50, f"ticks {lo}-{hi}: TSC and PM timer differ by {apart / PM_HZ * 1000:.1f} ms"


@pytest.mark.parametrize("timer", TIMERS)
def test_ticks_keep_their_spacing_across_a_restore_in_a_new_process(timer: str, tmp_path: Path) -> None:
    args = [KERNEL, "-append", f"timer={timer}"]
    whole = pyvmm("run", "-q", *args)
    assert whole.returncode == STATUS, whole.stderr.decode()
    snap = tmp_path / "ticks.snap"
    first = pyvmm("run", "-q", *args, "--snapshot-at", CUT, "--snapshot-to", str(snap))
    assert first.returncode == 0, first.stderr.decode()
    time.sleep(SAVED_FOR)
    second = pyvmm("restore", "-q", str(snap))
    assert second.returncode == STATUS, second.stderr.decode()
    whole_head, whole_spacings = split(whole.stdout)
    head, spacings = split(first.stdout + second.stdout)
    assert head == whole_head
    assert f"timer {timer}, period 10 ms\n30 ticks, 0 spurious\n".encode() in head
    check_spacing(whole_spacings, saved_for=None)
    check_spacing(spacings, saved_for=SAVED_FOR)


@pytest.mark.parametrize("timer", TIMERS)
def test_a_restored_machine_that_waits_before_it_runs_owes_no_ticks(timer: str, tmp_path: Path) -> None:
    """Restored, then a second before the first KVM_RUN: with the PIT re-injecting, every period
    of that second would be a tick delivered back to back once the guest runs."""
    snap = tmp_path / "ticks.snap"
    first = pyvmm("run", "-q", KERNEL, "-append", f"timer={timer}", "--snapshot-at", CUT, "--snapshot-to", str(snap))
    assert first.returncode == 0, first.stderr.decode()
    out = io.BytesIO()
    with Machine.from_snapshot(str(snap), console=out, log=io.StringIO()) as m:
        time.sleep(SAVED_FOR)
        result = m.run(timeout=20)
    assert result.status == STATUS, result.reason
    _, spacings = split(first.stdout + out.getvalue())
    check_spacing(spacings, saved_for=SAVED_FOR)


def test_the_tsc_deadline_stays_as_far_ahead_of_the_tsc_as_when_saved(tmp_path: Path) -> None:
    """The guest's TSC runs on through the time saved here (KVM leaves it where it is when the saved
    value is written back); a deadline put back as saved would lie half a second in the past and
    fire at once. A deadline that passed while the run was being stopped stays as far past."""
    snap = tmp_path / "deadline.snap"
    first = pyvmm("run", "-q", KERNEL, "-append", "timer=deadline", "--snapshot-at", "sync:5",
                  "--snapshot-to", str(snap))  # fmt: skip
    assert first.returncode == 0, first.stderr.decode()
    saved = Snapshot.load(str(snap)).vcpus[0].msr_values()
    ahead_then = saved[0x6E0] - saved[0x10]
    assert saved[0x6E0] != 0  # armed
    time.sleep(0.5)
    with Machine.from_snapshot(str(snap), console=io.BytesIO(), log=io.StringIO()) as m:
        now = m.vcpus[0].get_msrs([0x6E0, 0x10])
        time.sleep(0.1)
        tsc_per_s = (m.vcpus[0].get_msrs([0x10])[0x10] - now[0x10]) / 0.1
    ahead_now = now[0x6E0] - now[0x10]
    # the restore and the read take a few ms between them; half a second would be a stale deadline
    assert ahead_then - 0.05 * tsc_per_s < ahead_now <= ahead_then, (ahead_then / tsc_per_s, ahead_now / tsc_per_s)


def test_a_fast_reset_that_waits_before_it_runs_owes_no_pit_ticks(tmp_path: Path) -> None:
    """The same through `m.reset`: the first reset restores whole, the second takes the fast path
    (dirty pages only, vCPU and VM state); each is followed by a second's wait, then a run."""
    snap_file = tmp_path / "ticks.snap"
    first = pyvmm("run", "-q", KERNEL, "--snapshot-at", CUT, "--snapshot-to", str(snap_file))
    assert first.returncode == 0, first.stderr.decode()
    snap = Snapshot.load(str(snap_file))
    out = io.BytesIO()
    with Machine.from_snapshot(snap, console=out, log=io.StringIO()) as m:
        for _ in range(2):
            m.reset(snap)
            out.seek(0)
            out.truncate()
            time.sleep(SAVED_FOR)
            result = m.run(timeout=20)
            assert result.status == STATUS, result.reason
            _, spacings = split(first.stdout + out.getvalue())
            check_spacing(spacings, saved_for=SAVED_FOR)
