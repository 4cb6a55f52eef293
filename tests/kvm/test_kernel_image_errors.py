"""Kernel images pyvmm refuses: one line naming the problem, the image status, nothing run."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, guest, one_line_error, pyvmm, without_file_override

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

MB = Path(guest("hello-long")).parent / "mb"


def multiboot_header(flags: int) -> bytes:
    magic = 0x1BADB002
    return struct.pack("<III", magic, flags, -(magic + flags) & 0xFFFFFFFF)


def test_unsupported_required_flag(tmp_path: Path) -> None:
    image = tmp_path / "k.bin"
    image.write_bytes(multiboot_header(1 << 5) + bytes(64))
    line = one_line_error(pyvmm("run", str(image)), ExitStatus.BAD_IMAGE)
    assert "0x20" in line or "bit 5" in line


def test_kernel_larger_than_ram() -> None:
    line = one_line_error(pyvmm("run", str(MB / "mb-info.elf"), "-m", "1M"), ExitStatus.BAD_IMAGE)
    assert "outside guest RAM" in line


def test_truncated_elf(tmp_path: Path) -> None:
    image = tmp_path / "t.elf"
    image.write_bytes(b"\x7fELF\x02\x01\x01")
    assert "truncated" in one_line_error(pyvmm("run", str(image)), ExitStatus.BAD_IMAGE)


def test_missing_module() -> None:
    line = one_line_error(pyvmm("run", str(MB / "mb-info.elf"), "-initrd", "/no/such/module"), ExitStatus.BAD_IMAGE)
    assert "/no/such/module" in line


def test_unreadable_module(tmp_path: Path) -> None:
    prefix = without_file_override()
    module = tmp_path / "secret"
    module.write_bytes(b"x")
    module.chmod(0)
    cmd = [*prefix, sys.executable, "-m", "vmm.cli", "run", str(MB / "mb-info.elf"), "--module", str(module)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60)
    line = one_line_error(proc, ExitStatus.BAD_IMAGE)
    assert f"module '{module}' is not readable (permission denied)" in line
