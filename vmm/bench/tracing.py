"""Group 10: what `--trace` costs per exit. mb-exit-counts' port writes at one and at four vCPUs,
each untraced and traced to a file, every variant in a process of its own and alternating; the
figure is the process's user CPU per exit (the vCPU threads and the trace's writer thread alike),
and the traced-minus-untraced difference is printed beside it.

`python -m vmm.bench.tracing VARIANT` runs one variant and prints its timings as JSON. The same
cost in instructions, which other load does not change, is a row of group 11 (pyvmm-io-traced).
"""

from __future__ import annotations

import io
import json
import os
import resource
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


def main(argv: list[str]) -> int:
    vcpus, traced = VARIANTS[argv[0]]
    print(json.dumps(run_one(vcpus, traced)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
