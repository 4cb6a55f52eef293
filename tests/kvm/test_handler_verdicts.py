"""What a handler or policy file may hand back to pyvmm: a non-verdict return, a `Stop` with a
status outside 0-255 or with no reason, a `sys.exit()` anywhere in the file, and an SPP policy
returning a non-verdict mid-run each end the run with one line and HANDLER_ERROR; a status in
0-255 is passed through as the process status."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import guest, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

# hello-long's serial_init writes COM1's data port (0x3f8) within its first few exits, so a
# handler there answers early in a real run, after the guest is in long mode.
HANDLER_ON_COM1 = """\
import sys

from vmm.verdict import Stop


def setup(machine):
    machine.on_io(0x3F8, 1, lambda ex: {answer}, replace=True)
"""


def handlers_file(tmp_path: Path, answer: str) -> str:
    p = tmp_path / "answer.py"
    p.write_text(HANDLER_ON_COM1.format(answer=answer))
    return str(p)


def only_line(proc: subprocess.CompletedProcess[bytes], status: int) -> str:
    """The one `pyvmm:` line on stderr, after checking there is nothing else and the status."""
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pyvmm: "), err
    assert proc.returncode == status, err
    return lines[0]


@pytest.mark.parametrize(
    ("answer", "shown"), [("'text'", "'text'"), ("7", "7"), ("3.5", "3.5"), ("[1]", "[1]"), ("(None,)", "(None,)")]
)
def test_handler_returning_a_non_verdict(tmp_path: Path, answer: str, shown: str) -> None:
    proc = pyvmm("run", "--handlers", handlers_file(tmp_path, answer), str(guest("hello-long")), "--timeout", "10")
    line = only_line(proc, ExitStatus.HANDLER_ERROR)
    assert "which is not a verdict (None or a Stop)" in line
    assert f"returned {shown}," in line
    assert "exit status 20 " in line


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ("Stop('abc')", "Stop('abc', ...): a stop status is an int in 0-255"),
        ("Stop(999, 'x')", "Stop(999, ...): a stop status is an int in 0-255"),
        ("Stop(256, 'x')", "Stop(256, ...): a stop status is an int in 0-255"),
        ("Stop(-1, 'x')", "Stop(-1, ...): a stop status is an int in 0-255"),
        ("Stop(True, 'x')", "Stop(True, ...): a stop status is an int in 0-255"),
        ("Stop(4.0, 'x')", "Stop(4.0, ...): a stop status is an int in 0-255"),
        ("Stop(4, 5)", "Stop(4, 5): a stop reason is a string"),
    ],
)
def test_stop_with_a_status_outside_the_range(tmp_path: Path, answer: str, what: str) -> None:
    proc = pyvmm("run", "--handlers", handlers_file(tmp_path, answer), str(guest("hello-long")), "--timeout", "10")
    line = only_line(proc, ExitStatus.HANDLER_ERROR)
    assert line.startswith(f"pyvmm: {what}; exit status 20 "), line


@pytest.mark.parametrize("status", [0, 4, 255])
def test_stop_with_a_status_in_range_is_the_process_status(tmp_path: Path, status: int) -> None:
    answer = f"Stop({status}, 'chosen by the handler')"
    proc = pyvmm("run", "--handlers", handlers_file(tmp_path, answer), str(guest("hello-long")), "--timeout", "10")
    line = only_line(proc, status)
    assert line.startswith(f"pyvmm: chosen by the handler; exit status {status} "), line


def test_stop_without_a_reason(tmp_path: Path) -> None:
    proc = pyvmm("run", "--handlers", handlers_file(tmp_path, "Stop(6)"), str(guest("hello-long")), "--timeout", "10")
    line = only_line(proc, 6)
    assert line.startswith("pyvmm: stopped by a handler; exit status 6 "), line


@pytest.mark.parametrize(
    ("kind", "text", "said"),
    [
        ("handlers", "import sys\nsys.exit(3)\n", "called sys.exit(3) while loading"),
        ("handlers", "import sys\n\ndef setup(machine):\n    sys.exit(3)\n", "setup() called sys.exit(3)"),
        ("policy", "import sys\nsys.exit(3)\n", "called sys.exit(3) while loading"),
        ("policy", "import sys\n\ndef setup(spp):\n    sys.exit(3)\n", "setup() called sys.exit(3)"),
    ],
)
def test_sys_exit_in_a_user_file_before_the_run(tmp_path: Path, kind: str, text: str, said: str) -> None:
    p = tmp_path / "exits.py"
    p.write_text(text)
    args = ["--handlers", str(p)] if kind == "handlers" else ["--spp", "0x400000", "--policy", str(p)]
    proc = pyvmm("run", *args, str(guest("spp-demo")), "--timeout", "10")
    line = only_line(proc, ExitStatus.HANDLER_ERROR)
    assert line == f"pyvmm: {kind} file {str(p)!r}{'' if said.startswith('called') else ':'} {said}"
    assert proc.stdout == b""  # the guest never ran


def test_sys_exit_in_a_handler_mid_run(tmp_path: Path) -> None:
    proc = pyvmm(
        "run", "--handlers", handlers_file(tmp_path, "sys.exit(3)"), str(guest("hello-long")), "--timeout", "10"
    )
    line = only_line(proc, ExitStatus.HANDLER_ERROR)
    assert line.startswith("pyvmm: an exit handler raised sys.exit(3); handlers return a verdict; exit status 20 ")


@pytest.mark.parametrize("answer", ["'deny'", "0", "[]"])
def test_policy_returning_a_non_verdict_mid_run(tmp_path: Path, answer: str) -> None:
    shown = answer.replace('"', "'")
    """spp-demo's attacker writes the protected syscall table page after the guest has printed a
    line: the policy is asked in the middle of a run, not at start-up."""
    p = tmp_path / "policy.py"
    p.write_text(textwrap.dedent(f"def policy(event):\n    return {answer}\n"))
    proc = pyvmm("run", str(guest("spp-demo")), "--spp", "0x400000", "--policy", str(p), "--timeout", "10")
    line = only_line(proc, ExitStatus.HANDLER_ERROR)
    assert f"SPP policy 'policy' returned {shown}, which is not a verdict" in line
    assert b"attacker: overwriting syscall 1" in proc.stdout  # the guest was running


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ("Inject(999)", "Inject(999, ...): the vector is an exception number in 0-31"),
        ("Inject('x')", "Inject('x', ...): the vector is an exception number in 0-31"),
        ("Inject(14, -1)", "Inject(14, -1): the error code is None or an int in 0-0xffffffff"),
        ("Inject(13, 0, 'before')", "Inject(..., rip='before'): rip is None, 'after' or 'instruction'"),
        ("WriteInstead('abc')", "WriteInstead('abc'): the data is bytes"),
        ("StopVm(5)", "StopVm(5): the reason is a string"),
        ("AllowAndUnprotect('all')", "AllowAndUnprotect('all'): the scope is 'subpage' or 'page'"),
    ],
)
def test_policy_verdict_with_bad_fields_mid_run(tmp_path: Path, answer: str, what: str) -> None:
    p = tmp_path / "policy.py"
    p.write_text(f"from vmm.spp.event import *\n\n\ndef policy(event):\n    return {answer}\n")
    proc = pyvmm("run", str(guest("spp-demo")), "--spp", "0x400000", "--policy", str(p), "--timeout", "10")
    line = only_line(proc, ExitStatus.HANDLER_ERROR)
    assert line.startswith(f"pyvmm: SPP policy 'policy': {what}; exit status 20 "), line
    assert b"attacker: overwriting syscall 1" in proc.stdout
