"""Images that cannot be placed in the guest are refused with one line and the bad-image status.

(Input errors found before /dev/kvm is opened are in tests/unit/test_cli_errors.py.)"""

from __future__ import annotations

import subprocess

import pytest
from conftest import guest, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def one_line_error(proc: subprocess.CompletedProcess[bytes], status: ExitStatus) -> str:
    """The single `pyvmm: ` line of a refused command; checks the exit status too."""
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pyvmm: ")
    assert proc.returncode == status
    return lines[0]


def test_image_too_large_for_memory() -> None:
    # the default load address is 1 MiB: with 1 MiB of RAM nothing fits above it
    line = one_line_error(pyvmm("run", "--mem", "1M", str(guest("hello-long"))), ExitStatus.BAD_IMAGE)
    assert "beyond guest RAM" in line


def test_image_over_the_boot_structures() -> None:
    line = one_line_error(pyvmm("run", "--load", "0x2000", str(guest("hello-long"))), ExitStatus.BAD_IMAGE)
    assert "overlaps the monitor's boot structures" in line
