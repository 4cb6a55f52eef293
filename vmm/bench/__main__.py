"""`make bench`: per-exit cost of pyvmm next to the project's C baseline, measured in one run.

Every variant runs in a fresh process and times only its run loop (wall clock and the process's
user CPU), so start-up costs do not blur the per-exit figures. Variants alternate over several
rounds and the median round is reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from .inner import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "build"
BASELINE = ROOT / "tests" / "bench" / "build" / "kvm_baseline"


def run_variant(name: str) -> dict[str, float]:
    if name == "c-baseline":
        cmd = [str(BASELINE), "--mode", "io", str(GUESTS / "io-bench.bin")]
    elif name == "qemu":
        cmd = [sys.executable, "-m", "vmm.bench.qemu", str(GUESTS / "io-bench.bin")]
    else:
        cmd = [sys.executable, "-m", "vmm.bench.inner", name]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"bench: {name} printed no result (status {out.returncode}): {out.stderr.strip()}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m vmm.bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="variants to run")
    args = ap.parse_args()
    names = ["c-baseline", *VARIANTS]
    if shutil.which("qemu-system-x86_64"):
        names.append("qemu")
    if args.only:
        names = [n for n in names if n in args.only]
    for req in (BASELINE, GUESTS / "io-bench.bin"):
        if not req.exists():
            raise SystemExit(f"bench: {req} is missing: run `make guests baseline`")
    rounds: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:
            rounds[n].append(run_variant(n))
    print(f"{'variant':<22}{'exits':>9}{'wall/exit':>12}{'user/exit':>12}{'wall ratio':>12}{'user ratio':>12}")
    med: dict[str, tuple[float, float, int]] = {}
    for n in names:
        exits = int(rounds[n][0]["exits"])
        wall = statistics.median(r["wall_s"] / r["exits"] for r in rounds[n]) * 1e6
        user = statistics.median(r["user_s"] / r["exits"] for r in rounds[n]) * 1e6
        med[n] = (wall, user, exits)
    cw, cu, _ = med.get("c-baseline", (float("nan"), float("nan"), 0))
    for n, (wall, user, exits) in med.items():
        print(f"{n:<22}{exits:>9}{wall:>10.2f}µs{user:>10.2f}µs{wall / cw:>11.2f}x{user / cu:>11.1f}x")
    print(f"(median of {args.rounds} rounds; ratios are against c-baseline measured in the same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
