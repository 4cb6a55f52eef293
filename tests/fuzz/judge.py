"""One run of the real `pyvmm` command, and the verdict on it: what the README promises of every
run (a status from its table, no traceback, one line for a refused command, never a signal death,
never a run that outlives its --timeout by more than a second)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
PYVMM = BIN / "pyvmm"

SUMMARY = re.compile(r"exit status (\d+) after (\d+) exits in ([0-9.]+) s$")
OVERRUN_GRACE = 1.0  # a run may outlive its --timeout by this much (the README's promise)


@dataclass(frozen=True)
class StatusTable:
    """The statuses the README's "Exit status" table lists: numbers, and any odd one (a guest's
    debug-exit status). The row for statuses a user's handler chooses (0-255) is left out: no
    command line a fuzzer builds loads a handler that picks one."""

    numbers: frozenset[int]
    odd: bool

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and (status in self.numbers or (self.odd and status % 2 == 1 and status > 0))


@cache
def readme_statuses(text: str | None = None) -> StatusTable:
    text = README.read_text() if text is None else text
    section = text.split("### Exit status", 1)[1]
    numbers: set[int] = set()
    odd = False
    for line in section.splitlines():
        if line.startswith("#"):
            break
        cell = line.split("|")[1].strip() if line.startswith("|") else ""
        if cell.isdigit():
            numbers.add(int(cell))
        elif cell == "odd":
            odd = True
    if not numbers:
        raise ValueError("README.md has no exit status table")
    return StatusTable(frozenset(numbers), odd)


@dataclass
class Outcome:
    argv: list[str]
    status: int | None  # None: killed after `wall_limit`
    stdout: bytes
    stderr: str
    wall: float
    timeout: float | None  # the --timeout the run was given, if a valid one
    exits: int = 0
    failure: str | None = None  # the kind, see judge()
    detail: str = field(default="", repr=False)


def run_pyvmm(
    argv: list[str], *, timeout: float | None, wall_limit: float, cwd: Path = ROOT, command: Path = PYVMM
) -> Outcome:
    """`command ARGV`; `timeout` is the run's own --timeout (or None), `wall_limit` when the
    process is killed and counted as a hang."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(command), *argv], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=wall_limit)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        status = None
    outcome = Outcome(argv, status, out, err.decode(errors="replace"), time.monotonic() - start, timeout)
    judge(outcome)
    return outcome


def judge(o: Outcome, table: StatusTable | None = None) -> None:
    """Sets `o.failure` (None when the run kept every promise) and `o.exits`."""
    table = table or readme_statuses()
    lines = o.stderr.splitlines()
    summary = next((m for m in map(SUMMARY.search, lines) if m), None)
    o.exits = int(summary.group(2)) if summary else 0
    if o.status is None:
        o.failure, o.detail = "hang", f"still running after {o.wall:.1f} s"
    elif "Traceback" in o.stderr:
        o.failure, o.detail = "traceback", o.stderr[-2000:]
    elif o.status < 0:
        o.failure, o.detail = "signal", f"killed by {signal.Signals(-o.status).name}"
    elif o.status not in table:
        o.failure, o.detail = "status", f"status {o.status} is not in the README's table"
    elif summary is None and o.status and o.status % 2 == 0 and not (len(lines) == 1 and lines[0][:7] == "pyvmm: "):
        # pyvmm's own status and no summary: nothing ran, and a refused command is one line (a
        # guest's odd status, or 0, under -q has no summary and may have no line at all)
        o.failure, o.detail = "multiline", o.stderr[-2000:]
    elif summary is not None and o.timeout is not None and float(summary.group(3)) > o.timeout + OVERRUN_GRACE:
        o.failure, o.detail = "overrun", f"ran {summary.group(3)} s with --timeout {o.timeout:g}"
    else:
        o.failure = None
