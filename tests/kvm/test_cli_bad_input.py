"""Images that cannot be placed in the guest are refused with one line and the bad-image status.

(Input errors found before /dev/kvm is opened are in tests/unit/test_cli_errors.py.)"""

from __future__ import annotations

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def test_image_too_large_for_memory() -> None:
    # the default load address is 1 MiB: with 1 MiB of RAM nothing fits above it
    line = one_line_error(pyvmm("run", "--mem", "1M", str(guest("hello-long"))), ExitStatus.BAD_IMAGE)
    assert "beyond guest RAM" in line


def test_image_over_the_boot_structures() -> None:
    line = one_line_error(pyvmm("run", "--load", "0x2000", str(guest("hello-long"))), ExitStatus.BAD_IMAGE)
    assert "overlaps the monitor's boot structures" in line
