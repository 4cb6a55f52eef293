"""Start-up cost: a whole `pyvmm run -q` of the hello guest next to a bare interpreter's start-up,
the same interpreter, alternating, so the ratio holds on a noisy machine; and the same run through
the installed command (`make setup`'s launcher: a C program that execs `python -S` on a script
that takes Ctrl-C over before it runs `site`), when it is there."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUEST = ROOT / "guests" / "build" / "hello-long.bin"


INSTALLED = Path(sys.executable).parent / "pyvmm"


def commands() -> dict[str, list[str]]:
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "pyvmm run -q hello-long": [sys.executable, "-m", "vmm.cli", "run", "-q", str(GUEST)],
    }
    if INSTALLED.exists():
        cmds["installed pyvmm, same run"] = [str(INSTALLED), "run", "-q", str(GUEST)]
    return cmds


def wall_time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} ended with status {proc.returncode}")
    return elapsed


def report(rounds: int) -> None:
    if not GUEST.exists():
        raise SystemExit(f"bench: {GUEST} is missing: run `make guests`")
    cmds = commands()
    samples: dict[str, list[float]] = {n: [] for n in cmds}
    for _ in range(max(rounds, 5)):  # a process start is short: a few more rounds cost little
        for name, cmd in cmds.items():
            samples[name].append(wall_time(cmd))
    med = {n: statistics.median(s) for n, s in samples.items()}
    ref = med["python -c pass"]
    print("\nstart-up: whole process, wall time")
    print(f"  {'variant':<26}{'wall':>12}{'ratio':>10}")
    for name, t in med.items():
        print(f"  {name:<26}{t * 1e3:>9.1f} ms{t / ref:>9.2f}x")
