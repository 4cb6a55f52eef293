"""Driving pyvmm's gdb stub with the real gdb in batch mode: start `pyvmm run -S -gdb tcp::PORT`,
run a gdb script against it, collect both sides."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, guest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(port: int, *extra: str, image: str = "debug-target") -> subprocess.Popen[bytes]:
    path = image if "/" in image else str(guest(image))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmm.cli", "run", path, "-S", "-gdb", f"tcp::{port}", "--timeout", "60", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()  # printed once the socket listens
    if line != f"pyvmm: waiting for gdb on tcp::{port}\n":
        proc.kill()
        pytest.fail(f"pyvmm did not listen: {line!r}")
    return proc


def gdb(port: int, commands: list[str], tmp_path: Path, elf: Path | None) -> str:
    script = tmp_path / "cmds.gdb"
    script.write_text("\n".join(["set pagination off", "set confirm off", f"target remote :{port}", *commands]) + "\n")
    args = ["gdb", "-q", "-nx", "-batch", "-x", str(script)] + ([str(elf)] if elf is not None else [])
    out = subprocess.run(args, capture_output=True, timeout=90)
    return out.stdout.decode() + out.stderr.decode()


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out.decode(), err.decode()


def symbol(elf: Path, name: str) -> int:
    out = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(ln.split()[0], 16) for ln in out.splitlines() if ln.split()[-1] == name]
    return addr
