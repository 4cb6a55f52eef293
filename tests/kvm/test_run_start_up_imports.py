"""What a real `pyvmm run` imports, read from the interpreter's own import log (-X importtime): a
plain run of a flat binary and a kernel test runner's QEMU line load none of click, typing,
enum, signal.py and dataclasses. Together they cost more instructions than the interpreter's own
start-up (bench group 11); the run's line is read by vmm.cli.run_args, the modules on its path
import typing only for the type checker, their enumerations are vmm.light_enum's, their signal
calls come from `_signal` and their records are vmm.record's. A line that needs click (help, a
refusal) still gets it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import GUESTS, ROOT, guest

pytestmark = pytest.mark.kvm

HEAVY = ("click", "typing", "enum", "signal", "dataclasses")


def imported(*args: str) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vmm.cli", *args], cwd=ROOT, capture_output=True, timeout=60
    )
    names = set()
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "vmm.cli" in names, proc.stderr.decode()[-2000:]  # the log was read
    return proc, names


def test_a_plain_run_imports_none_of_them() -> None:
    proc, names = imported("run", "-q", str(guest("hello-long")))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"Hello from 64-bit long mode" in proc.stdout
    assert [m for m in HEAVY if m in names] == []


def test_a_runner_line_with_an_smp_kernel_imports_none_of_them() -> None:
    line = ["-nodefaults", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
            "-machine", "accel=kvm", "-smp", "2", "-m", "64", "-no-reboot",
            "-kernel", str(GUESTS / "mb" / "mb-smp.elf"), "-append", ""]  # fmt: skip
    proc, names = imported("run", "-q", *line)
    assert proc.returncode == (0x14 << 1) | 1, proc.stderr.decode()[-2000:]  # mb-smp exits with 0x14
    assert b"smp: all 2 cpus up" in proc.stdout
    assert [m for m in HEAVY if m in names] == []


def test_a_refused_line_still_goes_through_click() -> None:
    proc, names = imported("run", "--no-such-option", str(guest("hello-long")))
    assert proc.returncode == 2
    assert "click" in names
    assert proc.stderr.decode().splitlines()[-1].startswith("pyvmm: No such option '--no-such-option'.")
