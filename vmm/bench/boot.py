"""Boot time of a multiboot kernel: from process start to the kernel's first serial byte (its
first instructions have run by then) and to process exit, pyvmm next to QEMU."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "guests" / "build" / "mb" / "mb-exitcodes.elf"
QEMU_ARGS = ["-accel", "kvm", "-m", "128M", "-display", "none", "-vga", "none", "-nic", "none",
             "-monitor", "none", "-serial", "stdio", "-no-reboot",
             "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]  # fmt: skip


def commands() -> dict[str, list[str]]:
    cmds = {"pyvmm": [sys.executable, "-m", "vmm.cli", "run", "-q", str(KERNEL), "-m", "128M", "-append", "code=0"]}
    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        cmds["qemu"] = [qemu, *QEMU_ARGS, "-kernel", str(KERNEL), "-append", "code=0"]
    return cmds


def time_boot(cmd: list[str]) -> tuple[float, float]:
    """(seconds to the first byte on stdout, seconds to exit)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = os.read(proc.stdout.fileno(), 1)
    t_first = time.perf_counter() - t0
    proc.stdout.read()
    status = proc.wait(timeout=120)
    t_exit = time.perf_counter() - t0
    if not first or status != 1:
        raise SystemExit(f"bench: {cmd[0]} did not boot the kernel (status {status})")
    return t_first, t_exit


def report(rounds: int) -> None:
    if not KERNEL.exists():
        raise SystemExit(f"bench: {KERNEL} is missing: run `make guests`")
    cmds = commands()
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            samples[name].append(time_boot(cmd))
    print("\nboot of a multiboot kernel (mb-exitcodes), whole process")
    print(f"  {'variant':<26}{'first output':>14}{'exit':>12}")
    for name, s in samples.items():
        first = statistics.median(a for a, _ in s)
        total = statistics.median(b for _, b in s)
        print(f"  {name:<26}{first:>12.3f} s{total:>10.3f} s")
    if "qemu" not in cmds:
        print("  (qemu-system-x86_64 is not installed: no QEMU row)")
