"""Where a listening socket is to be bound (`-gdb unix:PATH`, `-monitor unix:PATH`), only a socket
an earlier run left behind is removed: a regular file, a FIFO or a device node at that path is
refused and stays as it was (run as root, an unlink would delete /dev/null)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from vmm.inputs import InputFileError, clear_socket_path


def test_a_missing_path_is_left_missing(tmp_path: Path) -> None:
    clear_socket_path(str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()


def test_a_stale_socket_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "old.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    clear_socket_path(str(path))
    assert not path.exists()


def test_a_regular_file_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"keep me")
    with pytest.raises(InputFileError, match=r"^is a regular file, not a socket pyvmm may replace$"):
        clear_socket_path(str(path))
    assert path.read_bytes() == b"keep me"


def test_a_fifo_and_a_directory_are_refused_by_kind(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="is a FIFO, not a socket pyvmm may replace"):
        clear_socket_path(str(fifo))
    with pytest.raises(InputFileError, match="is a directory, not a socket pyvmm may replace"):
        clear_socket_path(str(tmp_path))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_device_node_is_refused_and_kept() -> None:
    before = os.lstat("/dev/null")
    with pytest.raises(InputFileError, match="is a character device, not a socket pyvmm may replace"):
        clear_socket_path("/dev/null")
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_symlink_to_a_file_is_refused_and_both_kept(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(InputFileError, match=r"^is a symbolic link, not a socket pyvmm may replace$"):
        clear_socket_path(str(link))
    assert link.is_symlink() and target.read_bytes() == b"x"
