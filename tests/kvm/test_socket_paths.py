"""`-gdb unix:PATH` and `-monitor unix:PATH,server,nowait` bind a listening socket at PATH. A socket
an earlier run left there is replaced; anything else at PATH (a user's file, a device node) is
refused with one line and status 2, and stays as it was: run as root, replacing it would delete
the file or the device."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

SPELLINGS = {
    "gdb": lambda path: ["-gdb", f"unix:{path}"],
    "monitor": lambda path: ["-monitor", f"unix:{path},server,nowait"],
}


@pytest.mark.parametrize("option", sorted(SPELLINGS))
def test_a_regular_file_at_the_socket_path_is_refused_and_kept(tmp_path: Path, option: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"the user's notes\n")
    proc = pyvmm("run", "-q", str(guest("hello-long")), *SPELLINGS[option](path), "--timeout", "20")
    line = one_line_error(proc, ExitStatus.USAGE)
    assert f"'{path}' is a regular file, not a socket pyvmm may replace" in line, line
    assert path.read_bytes() == b"the user's notes\n"


@pytest.mark.parametrize("option", sorted(SPELLINGS))
def test_a_device_node_at_the_socket_path_is_refused_and_kept(option: str) -> None:
    before = os.lstat("/dev/full")
    assert stat.S_ISCHR(before.st_mode), "/dev/full is not a character device on this machine"
    proc = pyvmm("run", "-q", str(guest("hello-long")), *SPELLINGS[option]("/dev/full"), "--timeout", "20")
    line = one_line_error(proc, ExitStatus.USAGE)
    assert "'/dev/full' is a character device, not a socket pyvmm may replace" in line, line
    after = os.lstat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_stale_socket_is_replaced_and_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "mon.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # left behind, as by a run that was killed
    proc = pyvmm("run", "-q", str(guest("hello-long")), "-monitor", f"unix:{path},server,nowait", "--timeout", "20")
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
