"""Command-line input refused before /dev/kvm is opened: one `pyvmm: ` line on stderr and the
documented exit status. These run on hosts without KVM too. (Placement errors, which need a VM,
are in tests/kvm/test_cli_bad_input.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import GUESTS, ROOT, guest, one_line_error, pyvmm, without_file_override

from vmm.errors import ExitStatus


def test_missing_image(tmp_path: Path) -> None:
    line = one_line_error(pyvmm("run", str(tmp_path / "nope.bin")), ExitStatus.BAD_IMAGE)
    assert "does not exist" in line


def test_empty_image(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    line = one_line_error(pyvmm("run", str(empty)), ExitStatus.BAD_IMAGE)
    assert "is empty" in line


def test_directory_as_image(tmp_path: Path) -> None:
    line = one_line_error(pyvmm("run", str(tmp_path)), ExitStatus.BAD_IMAGE)
    assert "is a directory" in line


def test_unreadable_image() -> None:
    prefix = without_file_override()
    with tempfile.TemporaryDirectory() as d:
        image = Path(d) / "locked.bin"
        image.write_bytes(b"\xf4")
        image.chmod(0)
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "vmm.cli", "run", str(image)], cwd=ROOT, capture_output=True, timeout=60
        )
    line = one_line_error(proc, ExitStatus.BAD_IMAGE)
    assert "not readable" in line


def test_kvm_device_without_permission(tmp_path: Path) -> None:
    prefix = without_file_override()
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    device.chmod(0)
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "vmm.cli", "run", str(guest("hello-long"))],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYVMM_KVM_DEVICE": str(device)},
    )
    line = one_line_error(proc, ExitStatus.NO_KVM)
    assert f"no permission to open {device}" in line


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        (["--mem", "abc"], ExitStatus.USAGE, "memory size 'abc' is not a number"),
        (["--mem", "0"], ExitStatus.USAGE, "memory size 0x0"),
        (["--load", "0xzz"], ExitStatus.USAGE, "load address '0xzz' is not a number"),
        (["--mode", "bogus"], ExitStatus.USAGE, "'bogus'"),
        (["--timeout", "-1"], ExitStatus.USAGE, "--timeout"),
        (["--timeout", "0"], ExitStatus.USAGE, "--timeout"),
    ],
)
def test_bad_option_values(args: list[str], status: ExitStatus, needle: str) -> None:
    line = one_line_error(pyvmm("run", *args, str(guest("hello-long"))), status)
    assert needle in line


def test_missing_kvm_device(tmp_path: Path) -> None:
    device = str(tmp_path / "no-kvm-here")
    proc = subprocess.run(
        [sys.executable, "-m", "vmm.cli", "run", str(guest("hello-long"))],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYVMM_KVM_DEVICE": device},
    )
    line = one_line_error(proc, ExitStatus.NO_KVM)
    assert device in line
    assert "does not exist" in line


def test_qemu_device_pyvmm_does_not_have() -> None:
    line = one_line_error(pyvmm("run", str(GUESTS / "mb" / "mb-info.elf"), "-device", "virtio-net"), ExitStatus.USAGE)
    assert "virtio-net" in line
