"""The monitor (`-monitor stdio`, `-monitor unix:PATH,server,nowait`, `Machine.monitor_command`)
on real guests: registers, memory by virtual and physical address (words and instructions), the
vCPUs, SPP masks; `stop` holds the guest (no exits while held) until `cont`; `quit` ends the run
with status 64; a bad command is one line; a bad -monitor spelling is refused with status 2."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, guest, one_line_error, pyvmm

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


def test_stdio_commands_and_quit() -> None:
    image = guest("hang").read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmm.cli", "run", str(guest("hang")), "-monitor", "stdio", "--timeout", "30"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None

    def ask(line: str) -> str:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()
        got = b""
        while not got.endswith(b"(pyvmm) "):
            got += proc.stdout.read(1)
        return got.decode().removesuffix("(pyvmm) ")

    assert proc.stdout.read(8) == b"(pyvmm) "
    deadline = time.monotonic() + 20
    while "rip=0x100001" not in ask("info cpus"):  # until the guest runs its `jmp .`
        assert time.monotonic() < deadline
        time.sleep(0.05)
    text = "".join(ask(c) for c in ("info registers", "x/2xg 0x100000", "xp/2xw 0x100000", "x/1i $pc",
                                    "info cpus", "info spp", "frobnicate"))  # fmt: skip
    _, err = proc.communicate(b"quit\n", timeout=30)
    assert proc.returncode == ExitStatus.MONITOR_QUIT, err
    assert "quit from the monitor" in err.decode() and "Traceback" not in err.decode()
    rip = int(re.search(r"RIP=([0-9a-f]{16})", text).group(1), 16)  # type: ignore[union-attr]
    assert 0x100000 <= rip < 0x100000 + len(image)
    assert "CR0=80010033" in text and "EFER=0000000000000501" in text and "CS =0008" in text
    words = [int.from_bytes(image[i : i + 8].ljust(8, b"\0"), "little") for i in (0, 8)]
    assert f"0000000000100000: 0x{words[0]:016x} 0x{words[1]:016x}" in text
    assert f"0000000000100000: 0x{words[0] & 0xFFFFFFFF:08x} 0x{words[0] >> 32:08x}" in text  # xp, 4-byte words
    assert re.search(rf"{rip:016x}: eb fe\s+jmp 0x{rip:016x}", text), text  # the spin loop itself
    assert f"* CPU #0: rip={rip:#x}" in text
    assert "SPP is off" in text
    assert "unknown command 'frobnicate'; try 'help'" in text


def test_stop_holds_the_guest_until_cont_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "mon.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmm.cli", "run", str(guest("port-hammer")), "-monitor", f"unix:{path},server,nowait",
         "--timeout", "60", "-serial", "null"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        f = s.makefile("rw", encoding="utf-8", newline="\n")

        def ask(line: str) -> str:
            f.write(line + "\n")
            f.flush()
            got = ""
            while not got.endswith("(pyvmm) "):
                got += f.read(1)
            return got.removesuffix("(pyvmm) ")

        def exits() -> int:
            return int(re.search(r"vCPU 0: (\d+) exits", ask("info exits")).group(1))  # type: ignore[union-attr]

        while not f.read(8).endswith("(pyvmm) "):
            pass
        time.sleep(0.3)
        assert ask("stop").startswith("* CPU #0: rip=0x")
        held = exits()
        time.sleep(0.5)
        assert exits() == held  # held: not one exit while stopped
        assert ask("cont") == ""
        time.sleep(0.5)
        assert exits() > held  # running again
        ask("quit")
    proc.communicate(timeout=30)
    assert proc.returncode == ExitStatus.MONITOR_QUIT


def test_the_library_call_before_and_during_a_run() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hang").read_bytes(), CpuMode.LONG)
        assert "RIP=0000000000100000" in m.monitor_command("info registers")  # not running: answered at once
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(m.run(timeout=30).status))
        t.start()
        time.sleep(0.3)
        during = m.monitor_command("info registers")
        m.monitor_command("quit")
        t.join(30)
    assert "RIP=0000000000100001" in during  # the `jmp .` after the first byte (cli)
    assert result == [ExitStatus.MONITOR_QUIT]


def test_a_bad_monitor_spelling_is_one_line() -> None:
    line = one_line_error(pyvmm("run", str(guest("hang")), "-monitor", "tcp::4444"), ExitStatus.USAGE)
    assert "-monitor 'tcp::4444'" in line


def test_a_monitor_first_made_during_a_run() -> None:
    """Made mid-run, the monitor is told the run started: it hands commands to a vCPU thread
    rather than reading a vCPU inside KVM_RUN (which would block until the vCPU's next exit)."""
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hang").read_bytes(), CpuMode.LONG)
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(m.run(timeout=30).status))
        t.start()
        time.sleep(0.3)
        started = time.monotonic()
        during = m.monitor_command("info registers")
        took = time.monotonic() - started
        m.monitor_command("quit")
        t.join(30)
    assert "RIP=0000000000100001" in during and took < 2
    assert result == [ExitStatus.MONITOR_QUIT]
