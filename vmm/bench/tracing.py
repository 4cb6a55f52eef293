"""Group 10: what `--trace` costs per exit. mb-exit-counts' port writes at one and at four vCPUs,
each untraced and traced to a file, every variant in a process of its own and alternating; the
figure is the process's user CPU per exit (the vCPU threads and the trace's writer thread alike),
and the traced-minus-untraced difference is printed beside it.

`python -m vmm.bench.tracing VARIANT` runs one variant and prints its timings as JSON;
`python -m vmm.bench.tracing --instructions` counts instructions per exit under callgrind instead
(minutes; free of the noise other load puts into CPU times).
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "guests" / "build" / "mb" / "mb-exit-counts.elf"
TOTAL_OUTS = 60_000  # port exits of the guest's work in each variant, whatever the vCPU count
VARIANTS = {  # name -> (vCPUs, traced)
    "1 vCPU, untraced": (1, False),
    "1 vCPU, --trace": (1, True),
    "4 vCPUs, untraced": (4, False),
    "4 vCPUs, --trace": (4, True),
}


def run_one(vcpus: int, traced: bool) -> dict[str, float]:
    from vmm.loaders import load_kernel
    from vmm.machine import Machine
    from vmm.runner.trace import ExitTrace

    outs = TOTAL_OUTS // sum(range(1, vcpus + 1))  # the CPU of rank r does (r + 1) * outs
    with tempfile.TemporaryDirectory() as tmp, Machine(
        16 << 20, smp=vcpus, irqchip=True, platform="pc", console=io.BytesIO()
    ) as m:
        load_kernel(m, KERNEL.read_bytes(), str(KERNEL), cmdline=f"outs={outs}")
        fd = None
        if traced:
            fd = os.open(os.path.join(tmp, "trace.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            m.trace = ExitTrace(fd)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        result = m.run(timeout=600)
        if m.trace is not None:
            m.trace.close()  # the last records are written: their cost is counted
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        if fd is not None:
            size = os.fstat(fd).st_size
            os.close(fd)
            if size == 0:
                raise SystemExit("bench: the trace is empty")
        if result.status != 57:
            raise SystemExit(f"bench: mb-exit-counts ended with status {result.status}: {result.reason}")
        writer = m.trace.writer if m.trace is not None else None
        return {"exits": result.exits, "wall_s": t1 - t0, "user_s": r1.ru_utime - r0.ru_utime,
                "writer_user_s": writer.user_s if writer else 0.0, "writer_sys_s": writer.sys_s if writer else 0.0}


def _measure(name: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-m", "vmm.bench.tracing", name], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"bench: {name} printed no result (status {proc.returncode}): {proc.stderr.strip()}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def report(rounds: int) -> None:
    if not KERNEL.exists():
        raise SystemExit(f"bench: {KERNEL} is missing: run `make guests`")
    samples: dict[str, list[dict[str, float]]] = {n: [] for n in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:
            samples[name].append(_measure(name))
    def per_exit(runs: list[dict[str, float]], key: str, pick: Callable[[Iterable[float]], float]) -> float:
        return pick(s[key] / s["exits"] for s in runs) * 1e6

    print(f"\n--trace cost per exit (mb-exit-counts: {TOTAL_OUTS:,} port writes at CPL 3 to the UART scratch register)")
    print(f"  {'variant':<20}{'exits':>8}{'wall/exit':>11}{'user/exit':>11}{'min':>9}{'traced - untraced':>19}"
          f"{'min':>9}{'writer user':>13}{'writer sys':>12}")  # fmt: skip
    for name, runs in samples.items():
        vcpus, traced = VARIANTS[name]
        wall, user = per_exit(runs, "wall_s", statistics.median), per_exit(runs, "user_s", statistics.median)
        low = per_exit(runs, "user_s", min)
        exits = int(statistics.median(s["exits"] for s in runs))
        extra = ""
        if traced:
            plain = samples[f"{vcpus} vCPU{'s' if vcpus > 1 else ''}, untraced"]
            extra = (f"{user - per_exit(plain, 'user_s', statistics.median):>+16.2f} µs"
                     f"{low - per_exit(plain, 'user_s', min):>+7.2f} µs"
                     f"{per_exit(runs, 'writer_user_s', statistics.median):>10.2f} µs"
                     f"{per_exit(runs, 'writer_sys_s', statistics.median):>9.2f} µs")  # fmt: skip
        print(f"  {name:<20}{exits:>8}{wall:>9.2f}µs{user:>9.2f}µs{low:>7.2f}µs{extra}")
    print("  (user: the whole process, vCPU threads and writer thread; min: the least of the rounds, the figure")
    print("  least disturbed by other load; writer user and sys: the trace writer thread's own CPU time per exit,")
    print("  formatting and writing; the rest of the difference is the vCPU threads' share)")


# --- instructions per exit, under callgrind: free of the other load on the host ---------------------
IO_BENCH = ROOT / "guests" / "build" / "io-bench.bin"
IO_BENCH_BUILT = 200_000  # the loop count io-bench is built with, patched to the counts below
COUNTS = (1_000, 5_000)  # two runs per variant: their difference cancels start-up
CALLGRIND_RUN = """
import io, os, sys
from vmm.cpu.modes import CpuMode
from vmm.machine import Machine
count, traced, path, built = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
data = open(path, "rb").read().replace(built.to_bytes(4, "little"), count.to_bytes(4, "little"))
m = Machine(1 << 20, console=io.BytesIO())
m.load_flat(data, CpuMode.REAL)
if traced:
    from vmm.runner.trace import ExitTrace
    m.trace = ExitTrace(os.open(os.devnull, os.O_WRONLY))
result = m.run()
if traced:
    m.trace.close()
assert result.status == 1, result
"""


def _instructions(count: int, traced: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", CALLGRIND_RUN,
               str(count), "1" if traced else "0", str(IO_BENCH), str(IO_BENCH_BUILT)]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"bench: callgrind run failed: {proc.stderr.strip()[-500:]}")
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise SystemExit("bench: callgrind wrote no totals")


def instructions_report() -> None:
    """User-space instructions per port exit (every thread: vCPU and writer), untraced and traced
    to /dev/null, from io-bench at two exit counts."""
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind is not installed")
    per_exit = {}
    for traced in (False, True):
        low, high = (_instructions(n, traced) for n in COUNTS)
        per_exit[traced] = (high - low) / (COUNTS[1] - COUNTS[0])
    plain, traced_ = per_exit[False], per_exit[True]
    print("\n--trace cost per port exit in instructions (callgrind, io-bench, 1 vCPU, trace to /dev/null)")
    print(f"  untraced {plain:,.0f}   traced {traced_:,.0f}   "
          f"difference {traced_ - plain:+,.0f} ({traced_ / plain:.2f}x)")  # fmt: skip


def main(argv: list[str]) -> int:
    if argv == ["--instructions"]:
        instructions_report()
        return 0
    vcpus, traced = VARIANTS[argv[0]]
    print(json.dumps(run_one(vcpus, traced)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
