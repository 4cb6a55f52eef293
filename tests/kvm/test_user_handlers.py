"""User exit handlers: replacing a built-in device from the library and from `--handlers FILE`, a
handler that raises, and handler files that cannot be used."""

from __future__ import annotations

import io
import signal
import textwrap
from pathlib import Path

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.kvm.exits import IoExit
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

PROBE_LINE = b"mmio read: 0xffffffff\n"  # what mmio-probe prints on 0xe9 with no MMIO device

COUNTING_HANDLERS = """\
from vmm.kvm.exits import HltExit


def setup(machine):
    count = 0
    builtin = machine.debugcon.handle_io
    halted = machine.policy.handler_for(HltExit)

    def counting(ex):
        nonlocal count
        if ex.is_write:
            count += 1
        return builtin(ex)

    def report(ex):
        machine.console.write(f"0xe9 writes: {count}\\n".encode())
        return halted(ex)

    machine.on_io(0xE9, 1, counting, replace=True)
    machine.on_exit(HltExit, report)
"""

RAISING_HANDLERS = """\
def setup(machine):
    def explode(ex):
        raise RuntimeError("handler exploded on purpose")

    machine.on_io(0xE9, 1, explode, replace=True)
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_library_handler_replaces_the_debug_console() -> None:
    captured = bytearray()

    def capture(ex: IoExit) -> None:
        if ex.is_write:
            captured.append(ex.value)

    with Machine(console=io.BytesIO()) as m:
        m.on_io(0xE9, 1, capture, replace=True)
        m.load_flat(guest("mmio-probe").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.OK
    assert bytes(captured) == PROBE_LINE
    assert bytes(m.console.transcript) == b""  # the built-in device no longer sees the port


def test_cli_handlers_file_counts_debug_console_writes(tmp_path: Path) -> None:
    handlers = write(tmp_path, "count_e9.py", COUNTING_HANDLERS)
    proc = pyvmm("run", "--handlers", handlers, str(guest("mmio-probe")))

    assert proc.returncode == ExitStatus.OK, proc.stderr.decode()
    assert proc.stdout == PROBE_LINE + f"0xe9 writes: {len(PROBE_LINE)}\n".encode()


def test_cli_raising_handler_reports_traceback_and_guest_state(tmp_path: Path) -> None:
    handlers = write(tmp_path, "explode.py", RAISING_HANDLERS)
    proc = pyvmm("run", "--handlers", handlers, str(guest("mmio-probe")))

    err = proc.stderr.decode()
    assert proc.returncode == ExitStatus.HANDLER_ERROR
    assert 'raise RuntimeError("handler exploded on purpose")' in err  # the raising line
    assert "RuntimeError: handler exploded on purpose" in err
    assert "rip=" in err
    # the process went on to its normal end: the summary line is the last thing it wrote
    assert err.splitlines()[-1].startswith("pyvmm: an exit handler raised an exception; exit status 20 ")


def test_library_raising_handler_leaves_the_process_intact() -> None:
    def explode(ex: IoExit) -> None:
        raise RuntimeError("handler exploded on purpose")

    sigint_before = signal.getsignal(signal.SIGINT)
    with Machine(console=io.BytesIO()) as m:
        m.on_io(0xE9, 1, explode, replace=True)
        m.load_flat(guest("mmio-probe").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.HANDLER_ERROR
    assert 'raise RuntimeError("handler exploded on purpose")' in result.report
    assert "rip=" in result.report
    # the run's own signal handlers were taken down again
    assert signal.getsignal(signal.SIGINT) is sigint_before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_missing_handlers_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.py")
    line = one_line_error(pyvmm("run", "--handlers", missing, str(guest("hello-long"))), ExitStatus.USAGE)
    assert missing in line and "does not exist" in line


def test_handlers_file_with_syntax_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "broken.py", "def setup(machine)\n    pass\n")
    line = one_line_error(pyvmm("run", "--handlers", bad, str(guest("hello-long"))), ExitStatus.USAGE)
    assert "syntax error" in line and "line 1" in line


def test_handlers_file_without_setup(tmp_path: Path) -> None:
    empty = write(tmp_path, "nosetup.py", "VALUE = 1\n")
    line = one_line_error(pyvmm("run", "--handlers", empty, str(guest("hello-long"))), ExitStatus.USAGE)
    assert "setup()" in line
