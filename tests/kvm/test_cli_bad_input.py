"""Images that cannot be placed in the guest are refused with one line and the bad-image status.

(Input errors found before /dev/kvm is opened are in tests/unit/test_cli_errors.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


def test_image_too_large_for_memory() -> None:
    # the default load address is 1 MiB: with 1 MiB of RAM nothing fits above it
    line = one_line_error(pyvmm("run", "--mem", "1M", str(guest("hello-long"))), ExitStatus.BAD_IMAGE)
    assert "beyond guest RAM" in line


def test_image_that_leaves_no_room_for_the_boot_structures(tmp_path: Path) -> None:
    # 0x1000-0x96000 covered: the 0x5000 bytes above it, up to the stack's room, are too few for long mode
    image = tmp_path / "wide.bin"
    image.write_bytes(b"\xf4" * 0x95000)
    line = one_line_error(pyvmm("run", "--load", "0x1000", str(image)), ExitStatus.BAD_IMAGE)
    assert line == (
        "pyvmm: no room for the monitor's boot structures (0xb000 bytes for long mode) in low "
        "memory 0x1000-0x9b000: it is covered by the image (0x1000-0x96000)"
    )
