"""QEMU's machine options on real runs, through `pyvmm run` and through `pyvmm-system-x86_64`:
each changes what the guest sees the way QEMU's does."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GUESTS, guest, pyvmm, pyvmm_system

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

MB = GUESTS / "mb"
RUNNER = str(MB / "mb-runner.elf")
TIMER = str(MB / "mb-timer.elf")
Command = Callable[..., subprocess.CompletedProcess[bytes]]


def run_cmd(*args: str) -> subprocess.CompletedProcess[bytes]:
    return pyvmm("run", *args)


BOTH = pytest.mark.parametrize("command", [run_cmd, pyvmm_system], ids=["pyvmm-run", "pyvmm-system-x86_64"])


@BOTH
def test_two_dash_spellings(command: Command) -> None:
    proc = command("--no-reboot", "--kernel", RUNNER, "--append", "code=0x2a", "--smp", "2", "--m", "128",
                   "--device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "--serial", "stdio", "--machine",
                   "accel=kvm", "--display", "none", "--name", "t", "--no-user-config", "--no-hpet")  # fmt: skip
    out = proc.stdout.decode()
    assert proc.returncode == 85, proc.stderr
    assert 'runner: args "code=0x2a" (1 word)' in out
    assert "runner: cpus 2 in the MADT, 2 in fw_cfg, 2 up" in out


@BOTH
def test_nodefaults_without_serial_has_no_com1(command: Command) -> None:
    proc = command("-nodefaults", "-kernel", RUNNER, "-device", "isa-debug-exit,iobase=0xf4,iosize=4")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == b""  # the kernel printed to a COM1 that is not there, as under QEMU
    proc = command("-nodefaults", "-serial", "stdio", "-kernel", RUNNER)
    assert proc.returncode == 1 and b"runner: exit code 0x0" in proc.stdout


@BOTH
def test_serial_to_a_file_and_through_a_chardev(command: Command, tmp_path: Path) -> None:
    direct, via = tmp_path / "direct.txt", tmp_path / "via.txt"
    proc = command("-kernel", RUNNER, "-serial", f"file:{direct}")
    assert proc.returncode == 1 and proc.stdout == b"", proc.stderr
    proc = command("-kernel", RUNNER, "-chardev", f"file,id=log,path={via}", "-serial", "chardev:log")
    assert proc.returncode == 1 and proc.stdout == b"", proc.stderr
    assert b"runner: exit code 0x0\n" in direct.read_bytes()
    assert direct.read_bytes() == via.read_bytes()


@BOTH
def test_pit_off_leaves_a_timer_kernel_waiting(command: Command) -> None:
    # mb-timer sleeps in hlt until ten PIT interrupts: with the PIT it finishes, without it waits
    with_pit = command("-kernel", TIMER, "-global", "kvm-pit.lost_tick_policy=discard", "--timeout", "20")
    assert with_pit.returncode == 43, with_pit.stderr  # exit code 0x15
    assert b"10 ticks\n" in with_pit.stdout
    without = command("-kernel", TIMER, "-machine", "pc,pit=off", "--timeout", "2")
    assert without.returncode == ExitStatus.TIMEOUT, without.stderr
    assert b"ticks" not in without.stdout


def test_no_reboot_ends_a_triple_fault_with_status_0() -> None:
    image = str(guest("triple-fault"))
    plain = pyvmm("run", image)
    assert plain.returncode == ExitStatus.TRIPLE_FAULT
    for proc in (pyvmm("run", image, "-no-reboot"), pyvmm_system("--no-reboot", "-kernel", image)):
        err = proc.stderr.decode()
        assert proc.returncode == ExitStatus.OK, err
        assert "-no-reboot ends the run" in err
        assert "rip=" in err  # the guest-state report still says where it died
