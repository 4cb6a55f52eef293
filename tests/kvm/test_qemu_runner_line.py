"""The command line a kvm-unit-tests style runner builds for every test, kept verbatim, with the
project's own kernel (guests/mb/mb-runner.c) as TEST.flat and a six-line environment file as the
initrd: through `pyvmm-system-x86_64` and through `qemu-system-x86_64`, the same output and status.

QEMU 7.2 does not start here with the runner's own `-cpu max` (it aborts setting
IA32_ARCH_CAPABILITIES, see guests/README.md), so the comparison uses `-cpu
max,-arch-capabilities` for both; pyvmm also takes the line with `-cpu max` unchanged and must
print the same."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import GUESTS, pyvmm_system, skip_without_qemu

pytestmark = pytest.mark.kvm

QEMU = shutil.which("qemu-system-x86_64")
ENV_LINES = [
    "QEMU_ACCEL=kvm", "QEMU_VERSION_MAJOR=7", "QEMU_VERSION_MINOR=2", "QEMU_VERSION_MICRO=0", "HOST=x86_64",
    "BOGUS LINE",
]  # fmt: skip


def runner_line(test: Path, env: Path, args: str, cpu: str) -> list[str]:
    """The runner's argument vector after the binary name, as it builds it."""
    return [
        "--no-reboot", "-nodefaults", "-global", "kvm-pit.lost_tick_policy=discard",
        "-device", "pc-testdev", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-display", "none",
        "-serial", "stdio", "-device", "pci-testdev", "-machine", "accel=kvm", "-kernel", str(test), "-smp", "2",
        "-cpu", cpu, "-append", args, "-initrd", str(env),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("runner")
    kernel = GUESTS / "mb" / "mb-runner.elf"
    if not kernel.exists():
        pytest.fail(f"{kernel} is missing: run `make guests`")
    test, env = d / "TEST.flat", d / "ENVFILE"
    shutil.copyfile(kernel, test)
    env.write_text("\n".join(ENV_LINES) + "\n")
    return test, env


_qemu: dict[str, subprocess.CompletedProcess[bytes]] = {}


def qemu(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    if QEMU is None:
        skip_without_qemu()
    key = "\0".join(args)
    if key not in _qemu:
        _qemu[key] = subprocess.run([QEMU, *args], capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    return _qemu[key]


@pytest.mark.parametrize(
    ("args", "status"),
    [("first second=2 code=0x0", 1), ("code=0x2a", 85), ("fault", 249)],
    ids=["pass", "fail", "trap"],
)
def test_same_output_and_status_as_qemu(files: tuple[Path, Path], args: str, status: int) -> None:
    test, env = files
    line = runner_line(test, env, args, "max,-arch-capabilities")
    want = qemu(line)
    assert want.returncode == status, want.stdout + want.stderr
    got = pyvmm_system(*line, timeout=60)
    assert got.stdout.decode() == want.stdout.decode(), got.stderr
    assert got.returncode == want.returncode
    assert got.stderr == b""  # QEMU prints nothing on stderr here either


def test_what_the_kernel_saw(files: tuple[Path, Path]) -> None:
    test, env = files
    want = qemu(runner_line(test, env, "first second=2 code=0x0", "max,-arch-capabilities"))
    assert want.stdout.decode().splitlines() == [
        'runner: args "first second=2 code=0x0" (3 words)',
        "runner: env file 1 of 1 module, 6 lines",
        *(f"  env {ln}" if "=" in ln else f"  env {ln} (not KEY=VALUE)" for ln in ENV_LINES),
        "runner: cpus 2 in the MADT, 2 in fw_cfg, 2 up",
        "runner: pci-testdev (1b36:0005) at 00:02.0",
        "runner: pc-testdev ports 0xe0 and 0xe8 and memory at 0xff000000 read back",
        "runner: exit code 0x0",
    ]


def test_the_verbatim_line_with_cpu_max(files: tuple[Path, Path]) -> None:
    test, env = files
    want = qemu(runner_line(test, env, "first second=2 code=0x0", "max,-arch-capabilities"))
    got = pyvmm_system(*runner_line(test, env, "first second=2 code=0x0", "max"), timeout=60)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout), got.stderr
