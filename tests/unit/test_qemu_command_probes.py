"""What a test runner probes `pyvmm-system-x86_64` for before it runs anything: the version, the
help and the device list, in QEMU's shapes. No VM is created for any of them."""

from __future__ import annotations

import re

import pytest
from conftest import pyvmm, pyvmm_system

from vmm.cli.qemu_command import QEMU_VERSION
from vmm.errors import ExitStatus

VERSION_LINE = re.compile(r"^QEMU emulator version (\d+)\.(\d+)\.(\d+) \(pyvmm [0-9.]+\)$")


@pytest.mark.parametrize("flag", ["-version", "--version"])
def test_version_first_line_has_qemus_shape(flag: str) -> None:
    proc = pyvmm_system(flag)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.decode().splitlines()[0]
    m = VERSION_LINE.match(first)
    assert m is not None, first
    assert ".".join(m.groups()) == QEMU_VERSION == "7.2.0"


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_starts_with_the_version_line_and_lists_the_options(flag: str) -> None:
    proc = pyvmm_system(flag)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert VERSION_LINE.match(text.splitlines()[0])
    for option in ("-nodefaults", "--no-reboot", "-global", "-machine", "-chardev", "-rtc"):
        assert option in text


@pytest.mark.parametrize("question", ["help", "?"])
def test_device_help_in_qemus_format(question: str) -> None:
    for proc in (pyvmm_system("-device", question), pyvmm("run", "-device", question)):
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.decode().splitlines()
        assert lines[0] == "Misc devices:"
        # the lines QEMU 7.2 prints for these devices, character for character
        assert 'name "isa-debug-exit", bus ISA' in lines
        assert 'name "pc-testdev", bus ISA' in lines
        assert 'name "pci-testdev", bus PCI, desc "PCI Test Device"' in lines


def test_machine_and_cpu_lists() -> None:
    machines = pyvmm_system("-machine", "help")
    assert machines.returncode == 0
    assert machines.stdout.decode().splitlines()[:2] == [
        "Supported machines are:",
        "pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)",
    ]
    cpus = pyvmm_system("-cpu", "help")
    lines = cpus.stdout.decode().splitlines()
    assert cpus.returncode == 0 and lines[0] == "Available CPUs:"
    assert any(ln.startswith("x86 qemu64 ") for ln in lines) and any("x2apic" in ln for ln in lines)
    # two of QEMU 7.2's own lines, as `qemu-system-x86_64 -cpu help` prints them
    assert "x86 Skylake-Client        (alias configured by machine type)" in lines
    assert "x86 Cascadelake-Server-v1  Intel Xeon Processor (Cascadelake)" in lines


def test_a_disk_image_argument_is_refused() -> None:
    proc = pyvmm_system("disk.img")
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr.decode().splitlines() == [
        "pyvmm: a disk image ('disk.img') is not supported: give the kernel with -kernel FILE"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-bogus"], "No such option '-bogus'"),
        (["-global", "kvm-pit.lost_tick_policy=slew", "-kernel", "k"], "policy is delay or discard"),
        (["--machine", "microvm", "-kernel", "k"], "-machine microvm is not supported"),
        (["-M", "pc,kernel-irqchip=split", "-kernel", "k"], "kernel-irqchip=split is not supported"),
        (["-serial", "tcp:localhost:4444", "-kernel", "k"], "-serial tcp:localhost:4444 is not supported"),
        (["-vga", "std", "-kernel", "k"], "-vga std is not supported"),
        (["--rtc", "base=localtime,clock=rt", "-kernel", "k"], "-rtc clock=rt is not supported"),
        (["-device", "virtio-net-pci", "-kernel", "k"], "-device virtio-net-pci is not emulated"),
        (["-M", "kernel-irqchip=off", "-smp", "2", "-kernel", "k"], "-smp 2 needs the in-kernel irqchip"),
    ],
)
def test_refusals_are_one_line_with_status_2(args: list[str], message: str) -> None:
    for proc in (pyvmm_system(*args), pyvmm("run", *args)):
        err = proc.stderr.decode()
        assert proc.returncode == ExitStatus.USAGE, err
        assert len(err.splitlines()) == 1 and err.startswith("pyvmm: ") and message in err, err
        assert proc.stdout == b""
