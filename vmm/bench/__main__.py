"""`make bench`: the exit path's cost, pyvmm next to the project's C monitor, measured in one run.

Every variant runs in a fresh process and times only its run loop (wall clock and the process's
user CPU), so start-up does not blur per-exit figures. Variants alternate over several rounds and
the median is reported. Ratios compare variants within one group, measured side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "build"
BASELINE = ROOT / "tests" / "bench" / "build" / "kvm_baseline"

# group -> (reference variant, variants); the reference is the ratios' denominator
GROUPS: dict[str, tuple[str, list[str]]] = {
    "port I/O exit (io-bench: 200,000 OUTs to the UART scratch register)": (
        "c-io",
        ["c-io", "raw-python-io", "pyvmm-io"],
    ),
    "trapped write (mmio-bench: 100,000 byte stores into a write-protected page)": (
        "c-mmio",
        ["c-mmio", "raw-python-mmio", "pyvmm-spp-allowed", "pyvmm-spp-denied"],
    ),
    "unprotected CPL-3 workload (user-loop) with SPP regions elsewhere": (
        "user-loop",
        ["user-loop", "user-loop-spp-elsewhere"],
    ),
    "trapped CPL-3 store (spp-stores: 5,120 stores into an allowed sub-page): a plain mov, which KVM "
    "emulates, next to a movq KVM cannot emulate, decoded and carried out by the engine, and a lock add "
    "(as it is with one vCPU, and carried out again on the current value every time, as when other "
    "vCPUs write the page in between); per store": (
        "spp-plain-store",
        ["spp-plain-store", "spp-decoded-store", "spp-locked-add", "spp-locked-add-redone"],
    ),
}
# The numbers of GROUPS, in order: 3, 4 and 5 are the boot, start-up and snapshot reports below.
GROUP_NUMBERS = [0, 1, 2, 8]
# MSR exits: groups 6 and 7.
MSR_GROUPS: dict[str, tuple[str, list[str]]] = {
    "MSR exit handled in Python (msr-bench: 100,000 RDMSRs) next to a port-I/O exit": (
        "pyvmm-io",
        ["pyvmm-io", "pyvmm-msr"],
    ),
    "in-kernel MSRs (msr-bench, no exits) with the MSR filter set for another MSR": (
        "msr-kernel",
        ["msr-kernel", "msr-kernel-filter-elsewhere"],
    ),
}
# Write watchpoints on the SPP engine: group 9.
WATCH_GROUPS: dict[str, tuple[str, list[str]]] = {
    "write watchpoint (mmio-bench: 100,000 byte stores) next to a plain trapped store": (
        "pyvmm-spp-allowed",
        ["pyvmm-spp-allowed", "pyvmm-watch-neighbour", "pyvmm-watch-hit"],
    ),
}

# Groups whose point is the whole run's wall time: (the variant it is compared with, how each is named)
WHOLE_RUN = {
    "msr-kernel": ("msr-kernel-filter-elsewhere", "without a filter", "with LSTAR filtered"),
    "user-loop": ("user-loop-spp-elsewhere", "plain", "with 64 protected pages elsewhere"),
}


def command(name: str) -> list[str]:
    if name == "c-io":
        return [str(BASELINE), "--mode", "io", str(GUESTS / "io-bench.bin")]
    if name == "c-mmio":
        return [str(BASELINE), "--mode", "mmio", "--ro-page", "0x9000", str(GUESTS / "mmio-bench.bin")]
    if name == "qemu-io":
        return [sys.executable, "-m", "vmm.bench.qemu", str(GUESTS / "io-bench.bin")]
    return [sys.executable, "-m", "vmm.bench.inner", name]


def run_variant(name: str) -> dict[str, float]:
    out = subprocess.run(command(name), cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"bench: {name} printed no result (status {out.returncode}): {out.stderr.strip()}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m vmm.bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--group", type=int, nargs="*",
        help="run only these groups (0, 1, 2, 3 = boot time, 4 = start-up, 5 = snapshots, 6 and 7 = MSR exits, "
        "8 = decoded and locked SPP stores, 9 = write watchpoints, 10 = --trace cost per exit, "
        "11 = instruction counts under callgrind)",
    )  # fmt: skip
    args = ap.parse_args()
    for req in (BASELINE, *(GUESTS / f"{g}.bin" for g in ("io-bench", "mmio-bench", "user-loop", "msr-bench"))):
        if not req.exists():
            raise SystemExit(f"bench: {req} is missing: run `make guests baseline`")
    groups = list(GROUPS.items())
    if shutil.which("qemu-system-x86_64"):
        groups[0][1][1].append("qemu-io")
    numbered = list(zip(GROUP_NUMBERS, groups, strict=True)) + [(6 + i, g) for i, g in enumerate(MSR_GROUPS.items())]
    numbered += [(9 + i, g) for i, g in enumerate(WATCH_GROUPS.items())]
    for gi, (title, (ref, names)) in sorted(numbered, key=lambda item: item[0]):
        if args.group and gi not in args.group:
            continue
        rounds: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for n in names:
                rounds[n].append(run_variant(n))
        print(f"\n{title}")
        print(f"  {'variant':<26}{'exits':>9}{'wall/exit':>12}{'user/exit':>12}{'wall ratio':>12}{'user ratio':>12}")
        med = {
            n: (
                statistics.median(r["wall_s"] / r["exits"] for r in rs) * 1e6,
                statistics.median(r["user_s"] / r["exits"] for r in rs) * 1e6,
                int(statistics.median(r["exits"] for r in rs)),
            )
            for n, rs in rounds.items()
        }
        rw, ru, _ = med[ref]
        for n, (wall, user, exits) in med.items():
            # a run of one exit can bill less user time than getrusage resolves: no ratio to zero
            user_ratio = f"{user / ru:>11.2f}x" if ru > 0 else f"{'-':>12}"
            print(f"  {n:<26}{exits:>9}{wall:>10.2f}µs{user:>10.2f}µs{wall / rw:>11.2f}x{user_ratio}")
        if ref in WHOLE_RUN:
            other, plain_words, other_words = WHOLE_RUN[ref]
            plain, changed = (statistics.median(r["wall_s"] for r in rounds[n]) for n in (ref, other))
            print(
                f"  whole-run wall time: {plain:.4f} s {plain_words}, {changed:.4f} s {other_words} "
                f"({changed / plain:.2f}x)"
            )
    if not args.group or 3 in args.group:
        from vmm.bench.boot import report

        report(args.rounds)
    if not args.group or 4 in args.group:
        from vmm.bench.startup import report as startup_report

        startup_report(args.rounds)
    if not args.group or 5 in args.group:
        from vmm.bench.snapshot import report as snapshot_report

        snapshot_report(args.rounds)
    if not args.group or 10 in args.group:
        from vmm.bench.tracing import report as tracing_report

        tracing_report(args.rounds)
    if not args.group or 11 in args.group:
        from vmm.bench.instructions import report as instructions_report

        instructions_report()  # counts, not times: one round is exact
    print(f"\n(median of {args.rounds} rounds; ratios are against the group's first row, measured in the same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
