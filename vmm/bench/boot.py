"""Boot time of a multiboot kernel: from process start to the kernel's first serial byte (its
first instructions have run by then) and to process exit, pyvmm next to QEMU. Two command lines:
the compatibility tests' one on mb-exitcodes, and the line a kvm-unit-tests style runner builds
(mb-runner, 2 CPUs, pc-testdev, pci-testdev, an environment file as initrd) through
pyvmm-system-x86_64 and qemu-system-x86_64 with the same arguments."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "guests" / "build" / "mb" / "mb-exitcodes.elf"
QEMU_ARGS = ["-accel", "kvm", "-m", "128M", "-display", "none", "-vga", "none", "-nic", "none",
             "-monitor", "none", "-serial", "stdio", "-no-reboot",
             "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]  # fmt: skip


RUNNER_KERNEL = ROOT / "guests" / "build" / "mb" / "mb-runner.elf"
ENV_FILE = "QEMU_ACCEL=kvm\nQEMU_VERSION_MAJOR=7\nHOST=x86_64\n"


def runner_args(env: Path) -> list[str]:
    # -cpu max,-arch-capabilities: QEMU 7.2 does not start with plain -cpu max on these hosts
    return ["--no-reboot", "-nodefaults", "-global", "kvm-pit.lost_tick_policy=discard",
            "-device", "pc-testdev", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-display", "none",
            "-serial", "stdio", "-device", "pci-testdev", "-machine", "accel=kvm", "-kernel", str(RUNNER_KERNEL),
            "-smp", "2", "-cpu", "max,-arch-capabilities", "-append", "first second=2",
            "-initrd", str(env)]  # fmt: skip


def commands(env: Path) -> dict[str, list[str]]:
    cmds = {"pyvmm": [sys.executable, "-m", "vmm.cli", "run", "-q", str(KERNEL), "-m", "128M", "-append", "code=0"]}
    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        cmds["qemu"] = [qemu, *QEMU_ARGS, "-kernel", str(KERNEL), "-append", "code=0"]
    cmds["pyvmm-system-x86_64, runner line"] = [sys.executable, "-m", "vmm.cli.qemu_command", *runner_args(env)]
    if qemu:
        cmds["qemu, runner line"] = [qemu, *runner_args(env)]
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
    for kernel in (KERNEL, RUNNER_KERNEL):
        if not kernel.exists():
            raise SystemExit(f"bench: {kernel} is missing: run `make guests`")
    with tempfile.TemporaryDirectory() as d:
        env = Path(d) / "ENVFILE"
        env.write_text(ENV_FILE)
        measure(commands(env), rounds)


def measure(cmds: dict[str, list[str]], rounds: int) -> None:
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            samples[name].append(time_boot(cmd))
    print("\nboot of a multiboot kernel (mb-exitcodes; mb-runner for the runner line), whole process")
    print(f"  {'variant':<36}{'first output':>14}{'exit':>12}")
    for name, s in samples.items():
        first = statistics.median(a for a, _ in s)
        total = statistics.median(b for _, b in s)
        print(f"  {name:<36}{first:>12.3f} s{total:>10.3f} s")
    if "qemu" not in cmds:
        print("  (qemu-system-x86_64 is not installed: no QEMU row)")
