"""The gdb stub driven by the real gdb (batch mode) against `pyvmm run -S -gdb tcp::PORT` on
debug-target (own IDT, CPL 0 then CPL 3): the first instruction, registers, disassembly, stepi,
hbreak and break, set var, continue to the guest's own exit status, info threads, monitor, kill,
Ctrl-C on a spinning guest;
and bad input: a bad -gdb spelling, a port in use, garbage and a debugger that disconnects
mid-packet."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GUESTS, ROOT, guest, one_line_error, pyvmm
from gdb_session import finish, free_port, start
from gdb_session import gdb as run_gdb
from gdb_session import symbol as elf_symbol

from vmm.errors import ExitStatus

pytestmark = [pytest.mark.kvm, pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")]
ELF = GUESTS / "debug-target.elf"


def gdb(port: int, commands: list[str], tmp_path: Path) -> str:
    return run_gdb(port, commands, tmp_path, ELF)


def symbol(name: str) -> int:
    return elf_symbol(ELF, name)


def test_stop_at_the_first_instruction_registers_disassembly_and_stepi(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port)
    text = gdb(port, ["info registers", "x/8i $pc", "stepi", "p/x $pc", "stepi", "p/x $pc", "continue"], tmp_path)
    status, out, _ = finish(proc)
    assert "0x0000000000100000 in _start ()" in text  # stopped before the entry's first instruction
    for reg in ("rax", "rsp", "rip            0x100000", "eflags", "cs             0x8", "ss"):
        assert reg in text, text
    assert "=> 0x100000 <_start>:\tcld" in text
    assert text.count("<_start+") >= 7  # eight instructions disassembled from guest memory
    # cld is one byte, the next `mov $imm32, %edi` five
    assert "$1 = 0x100001" in text and "$2 = 0x100006" in text, text
    assert "exited with code 0143" in text  # 99, the guest's own status, in gdb's octal
    assert status == 99 and "debug-target: done" in out


def test_hbreak_break_set_var_threads_and_monitor(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port)
    text = gdb(port, [
        "hbreak bump", "continue", "p $rdi", "delete",
        f"break *{symbol('bump') + 0x11:#x}", "continue", "p/x $pc",
        "set var *(unsigned long *)&counter = 0x100", "p/x *(unsigned long *)&counter",
        "info threads", "monitor info exits", f"monitor x/2xb {symbol('bump'):#x}", "delete", "continue",
    ], tmp_path)  # fmt: skip
    status, out, _ = finish(proc)
    assert "Breakpoint 1, 0x0000000000100030 in bump ()" in text, text
    assert "$1 = 1" in text  # bump(1): its argument in rdi
    assert f"$2 = {symbol('bump') + 0x11:#x}" in text
    assert "$3 = 0x100" in text
    assert "* 1    Thread 1" in text
    assert "vCPU 0: " in text and " exits" in text
    code = (GUESTS / "debug-target.bin").read_bytes()[symbol("bump") - 0x100000 :][:2]
    assert f"{symbol('bump'):016x}: {code[0]:#04x} {code[1]:#04x}" in text  # the console's x, from gdb
    assert status == 99
    # counter was 1 when it was set to 0x100 (bump(1) had stored it): 0x100 + 2 + 3 + 1 + 2 + 3
    assert "debug-target: counter 0x10b" in out, out
    assert "traps cpu=0 total=0" in out


def test_kill_ends_pyvmm_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port)
    text = gdb(port, ["kill"], tmp_path)
    status, _, err = finish(proc)
    assert "Traceback" not in err + text
    assert status == ExitStatus.GDB_KILLED
    assert "killed by the debugger" in err


def test_a_debugger_that_disconnects_mid_packet_lets_the_guest_run_on() -> None:
    port = free_port()
    proc = start(port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"garbage\x00\xff+-$qSupported#00")  # a bad checksum: answered with '-'
        assert b"-" in s.recv(64)
        s.sendall(b"$?#3f")
        reply = b""
        while b"#" not in reply:  # the ack and the reply may arrive apart
            reply += s.recv(64)
        assert b"$T05thread:1;#" in reply, reply
        s.sendall(b"$m1000")  # and gone, mid-packet
    status, out, err = finish(proc)
    assert "Traceback" not in err
    assert status == 99 and "debug-target: done" in out and "traps cpu=0 total=0" in out


def test_bad_gdb_spellings_and_a_port_in_use_are_one_line() -> None:
    for spec in ("tcp:1234", "tcp::notaport", "udp::1234", "tcp::70000"):
        line = one_line_error(pyvmm("run", str(guest("debug-target")), "-gdb", spec), ExitStatus.USAGE)
        assert f"-gdb {spec!r}" in line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line = one_line_error(pyvmm("run", str(guest("debug-target")), "-gdb", f"tcp::{port}"), ExitStatus.USAGE)
        assert "cannot listen" in line
    line = one_line_error(pyvmm("run", str(guest("debug-target")), "-S"), ExitStatus.USAGE)
    assert "-S waits for a debugger" in line


def test_ctrl_c_stops_a_spinning_guest() -> None:
    """gdb's interrupt is the byte 0x03 on the connection; sent here on a socket of our own, since
    gdb in batch mode does not deliver an `interrupt` while a `continue &` runs."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmm.cli", "run", str(guest("hang")), "-S", "-gdb", f"tcp::{port}", "--timeout", "60"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None and proc.stderr.readline().startswith(b"pyvmm: waiting for gdb")
    with socket.create_connection(("127.0.0.1", port)) as s:

        def reply() -> bytes:
            got = b""
            while b"#" not in got or len(got) < got.index(b"#") + 3:
                got += s.recv(256)
            return got

        s.sendall(b"$?#3f")
        assert b"$T05thread:1;" in reply()
        s.sendall(b"$c#63")
        time.sleep(0.5)  # the guest spins in `jmp .` with no exits
        s.sendall(b"\x03")
        assert b"$T02thread:1;" in reply()  # SIGINT, as gdb expects for an interrupt
        s.sendall(b"$p10#d1")  # rip
        rip = reply()
        s.sendall(b"$k#6b")
    status, _, err = finish(proc)
    assert int.from_bytes(bytes.fromhex(rip.split(b"$")[1].split(b"#")[0].decode()), "little") >= 0x100000
    assert status == ExitStatus.GDB_KILLED and "Traceback" not in err


def test_python_breakpoints_and_gdb_together_are_refused_with_one_line(tmp_path: Path) -> None:
    handlers = tmp_path / "bp_handlers.py"
    handlers.write_text(f"def setup(machine):\n    machine.on_breakpoint({symbol('bump'):#x}, print)\n")
    args = ("run", str(guest("debug-target")), "-gdb", f"tcp::{free_port()}", "--handlers", str(handlers))
    line = one_line_error(pyvmm(*args), ExitStatus.USAGE)
    assert "cannot be used with -gdb" in line
    watch = tmp_path / "watch_handlers.py"  # a watch from Python is fine beside gdb
    watch.write_text(f"def setup(machine):\n    machine.watch({symbol('counter'):#x}, 8, 'w', lambda e: None)\n")
    port = free_port()
    proc = start(port, "--handlers", str(watch))
    text = gdb(port, ["watch *(unsigned long *)&counter", "continue", "delete", "continue"], tmp_path)
    status, out, _ = finish(proc)
    assert "New value = 1" in text and status == 99 and "debug-target: counter 0xc" in out


def test_stepi_stops_short_of_an_iretq_to_cpl3(tmp_path: Path) -> None:
    """user_run() enters CPL 3 with iretq: a step across it would end unreported at CPL 3 and leak
    a #DB into the guest here, so stepping stops before it with a message."""
    port = free_port()
    proc = start(port)
    text = gdb(port, [f"hbreak *{symbol('user_run'):#x}", "continue", "delete", "stepi 200", "x/1i $pc", "p $cs",
                      "continue"], tmp_path)  # fmt: skip
    status, out, _ = finish(proc)
    assert re.search(r"the instruction at 0x[0-9a-f]+ on vCPU 0 may return to CPL 3", text), text
    assert re.search(r"=> 0x[0-9a-f]+ <user_run\+\d+>:\tiretq", text), text
    assert "$1 = 8" in text
    assert status == 99 and "traps cpu=0 total=0" in out


def test_ctrl_c_stops_a_guest_running_at_cpl3() -> None:
    port = free_port()
    proc = start(port, image="user-spin")  # spins at CPL 3 for ever, no exits
    with socket.create_connection(("127.0.0.1", port)) as s:

        def ask(pkt: bytes) -> bytes:
            if pkt:
                s.sendall(b"$" + pkt + b"#" + f"{sum(pkt) & 0xFF:02x}".encode())
            got = b""
            while b"$" not in got or b"#" not in got[got.index(b"$") :] or len(got) < got.rindex(b"#") + 3:
                got += s.recv(4096)
            return got[got.index(b"$") + 1 : got.rindex(b"#")]

        assert ask(b"?") == b"T05thread:1;"
        s.sendall(b"$c#63")
        time.sleep(0.5)
        s.sendall(b"\x03")
        assert ask(b"").startswith(b"T02thread:1;")
        cs = int.from_bytes(bytes.fromhex(ask(b"p12").decode()), "little")  # register 18: cs
        s.sendall(b"$k#6b")
    status, _, err = finish(proc)
    assert cs == 0x1B  # stopped in the CPL-3 loop
    assert status == ExitStatus.GDB_KILLED and "Traceback" not in err
