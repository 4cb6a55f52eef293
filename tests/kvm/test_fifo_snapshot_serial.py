"""Files the command would block on or never finish reading, found by the command-line fuzzer: a
FIFO or a device as the snapshot to restore (status 40), a FIFO or directory as --snapshot-to or
as -serial file: (status 2, before the guest runs) are refused by name in one line; a 3 GiB sparse
file as a snapshot is refused from its size and its header, not read."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


@pytest.fixture
def fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_restore_refuses_what_is_not_a_regular_file(fifo: str, kind: str) -> None:
    path = fifo if kind == "fifo" else "/dev/zero"
    line = one_line_error(pyvmm("restore", path, timeout=20), ExitStatus.SNAPSHOT_UNREADABLE)
    assert f"cannot read snapshot {path!r}: it is a {'FIFO' if kind == 'fifo' else 'character device'}" in line


def test_snapshot_to_a_fifo_is_refused_before_the_run(fifo: str) -> None:
    proc = pyvmm("run", str(guest("snap-long")), "--snapshot-at", "sync:1", "--snapshot-to", fifo, timeout=20)
    line = one_line_error(proc, ExitStatus.USAGE)
    assert line == f"pyvmm: --snapshot-to {fifo!r} is a FIFO, not a file pyvmm can write"


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_serial_file_refuses_a_fifo_or_directory(fifo: str, tmp_path: Path, kind: str) -> None:
    path = fifo if kind == "fifo" else str(tmp_path)
    proc = pyvmm("run", str(guest("hello-long")), "-serial", f"file:{path}", timeout=20)
    line = one_line_error(proc, ExitStatus.USAGE)
    assert line.endswith(f"{path!r} is a {'FIFO' if kind == 'fifo' else 'directory'}, not a file pyvmm can write")


def test_a_snapshot_still_round_trips_through_a_regular_file(tmp_path: Path) -> None:
    snap = tmp_path / "s.snap"
    first = pyvmm("run", str(guest("snap-long")), "--snapshot-at", "sync:1", "--snapshot-to", str(snap), timeout=30)
    assert first.returncode == 0, first.stderr
    rest = pyvmm("restore", str(snap), timeout=30)
    assert rest.returncode == 0, rest.stderr


def test_restore_refuses_a_huge_sparse_file_from_its_size(tmp_path: Path) -> None:
    # a valid header whose length disagrees with the file's: refused without reading 3 GiB
    path = tmp_path / "sparse.snap"
    with open(path, "wb") as f:
        f.write(struct.pack("<8sIIQ32s8x", b"PYVMSNAP", 1, 64, 16, hashlib.sha256(b"").digest()))
        f.truncate(3 << 30)
    start = time.monotonic()
    line = one_line_error(pyvmm("restore", str(path), timeout=30), ExitStatus.SNAPSHOT_CORRUPT)
    assert line == f"pyvmm: snapshot {path} has {(3 << 30) - 64 - 16} bytes after its payload"
    assert time.monotonic() - start < 10


def test_a_wrong_ram_size_is_refused_before_the_image_is_read(tmp_path: Path) -> None:
    # -m 0 used to lift the image's size limit to 4 GiB: a 3 GiB sparse image was read whole first
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(3 << 30)
    start = time.monotonic()
    line = one_line_error(pyvmm("run", str(path), "-m", "0", timeout=60), ExitStatus.USAGE)
    assert line == "pyvmm: memory size 0x0 must be a multiple of 4 KiB and at least 64 KiB"
    assert time.monotonic() - start < 10
