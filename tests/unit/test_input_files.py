"""Files named on the command line are examined before they are read: a FIFO, a device, a
directory is refused by name, and an image larger than guest RAM from its size. Every case used to
block for ever, read without end or die with a MemoryError; each is now one line, promptly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GUESTS, guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

PROMPT = 20.0  # seconds: far beyond a refusal's cost, far below "blocked for ever"


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path


def refused(status: int, *args: str) -> str:
    return one_line_error(pyvmm(*args, timeout=PROMPT), status)


@pytest.mark.parametrize("path,kind", [("/dev/zero", "a character device"), ("/dev/urandom", "a character device")])
def test_device_as_image(path: str, kind: str) -> None:
    assert f"image {path!r} is {kind}, not a regular file" in refused(ExitStatus.BAD_IMAGE, "run", path)


def test_fifo_as_image(fifo: Path) -> None:
    assert "is a FIFO" in refused(ExitStatus.BAD_IMAGE, "run", str(fifo))


def test_sparse_image_larger_than_ram_refused_from_its_size(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(3 << 30)  # 3 GiB, no blocks: reading it would need 3 GiB of memory
    line = refused(ExitStatus.BAD_IMAGE, "run", "--mem", "16M", str(big))
    assert f"is {3 << 30} bytes, more than the {16 << 20}" in line


def test_device_and_fifo_as_multiboot_module(fifo: Path) -> None:
    kernel = str(GUESTS / "mb" / "mb-runner.elf")
    assert "module '/dev/zero' is a character device" in refused(
        ExitStatus.BAD_IMAGE, "run", kernel, "-initrd", "/dev/zero"
    )
    assert "is a FIFO" in refused(ExitStatus.BAD_IMAGE, "run", kernel, "-initrd", str(fifo))


@pytest.mark.parametrize("option", ["--spp-file", "--handlers", "--policy"])
def test_device_fifo_and_directory_as_text_files(option: str, fifo: Path, tmp_path: Path) -> None:
    image = str(guest("hello-long"))
    for path, kind in (("/dev/zero", "a character device"), (str(fifo), "a FIFO"), (str(tmp_path), "a directory")):
        line = refused(ExitStatus.USAGE, "run", image, option, path)
        assert f"{path!r} is {kind}, not a regular file" in line, line


def test_fifo_and_directory_as_trace(fifo: Path, tmp_path: Path) -> None:
    image = str(guest("hello-long"))
    assert "is a FIFO" in refused(ExitStatus.USAGE, "run", image, "--trace", str(fifo))
    assert "is a directory" in refused(ExitStatus.USAGE, "run", image, "--trace", str(tmp_path))


@pytest.mark.parametrize("spec", ["0x200000-0xffffffffffffffff", "0-0x100000000"])
def test_spp_range_larger_than_ram_refused_by_arithmetic(spec: str) -> None:
    line = refused(ExitStatus.USAGE, "run", "--mem", "16M", str(guest("hello-long")), "--spp", spec)
    assert "more than guest RAM's 4096" in line
