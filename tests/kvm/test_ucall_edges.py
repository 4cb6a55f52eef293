"""What is and is not a ucall, with the `ucall-edges` guest through the real command: a struct
refused for its magic is never written to; 8- and 16-bit OUTs to 0x1000, OUTs to 0x1001-0x1003
and INs are no ucalls but unhandled port accesses (ignored, traced, fatal under --strict with the
unhandled-access status); and the lines a guest makes the monitor print are rate-limited, the rest
counted in one line at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import guest, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

FLOOD = 1000  # ucall-edges.c
SHOWN = 20  # vmm.devices.notices.GuestNotices' limit
NARROW = [(0x1000, 1), (0x1000, 2), (0x1001, 4), (0x1002, 4), (0x1003, 4), (0x1002, 2), (0x1003, 1)]


def run_edges(*options: str) -> tuple[int, str, list[str]]:
    proc = pyvmm("run", str(guest("ucall-edges")), "--timeout", "20", *options)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode().splitlines()


def test_a_struct_refused_for_its_magic_is_not_written_to() -> None:
    status, out, err = run_edges()
    assert status == ExitStatus.OK, err
    assert "ucall-edges: result 0x7fffffff\n" in out  # not -EFAULT (0xfffffff2)
    assert "bad magic taken as a ucall" not in out
    assert err[0].startswith("pyvmm: rejected ucall at 0x") and err[0].endswith(": bad magic 0x4c414255")


def test_only_a_32_bit_out_to_0x1000_is_a_ucall(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    status, out, err = run_edges("--trace", str(trace))
    assert status == ExitStatus.OK, err
    assert "narrow write taken as a ucall" not in out
    assert "ucall-edges: in 0xffffffff\n" in out  # the empty bus's all-ones
    # none of them is a (rejected) ucall: the only rejections are the bad-magic ones
    assert all("bad magic" in line for line in err if "rejected ucall" in line)
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    unhandled = [e for e in events if e.get("event") == "unhandled-io"]
    assert [(e["port"], e["size"]) for e in unhandled if e["write"]] == NARROW
    assert [(e["port"], e["size"]) for e in unhandled if not e["write"]] == [(0x1000, 4)]
    assert all("is not a ucall" in e["why"] for e in unhandled)


def test_under_strict_a_narrow_write_is_an_unhandled_port_access() -> None:
    status, out, err = run_edges("--strict")
    # the bad-magic step comes first and is a malformed ucall: strict stops there with 26
    assert status == ExitStatus.BAD_GUEST_REQUEST, err
    assert "ucall-edges: narrow" not in out


def test_strict_narrow_write_status(tmp_path: Path) -> None:
    # past the bad-magic step (a handler answers that one), the first narrow write stops the run
    handlers = tmp_path / "skip_bad_magic.py"
    handlers.write_text(
        "def setup(m):\n"
        "    m.ucall.strict = False\n"
    )
    status, out, err = run_edges("--strict", "--handlers", str(handlers))
    assert status == ExitStatus.UNHANDLED_EXIT, err
    assert out.endswith("ucall-edges: narrow\n")
    assert err[-1].startswith(
        "pyvmm: port 0x1000: an 8-bit write at 0x1000 is not a ucall (a ucall is a 32-bit OUT to 0x1000) (--strict)"
    ), err


def test_guest_triggered_lines_are_rate_limited() -> None:
    status, out, err = run_edges()
    assert status == ExitStatus.OK
    assert out.endswith("ucall-edges: done\n")
    rejected = [line for line in err if line.startswith("pyvmm: rejected ucall")]
    assert len(rejected) == SHOWN
    more = FLOOD + 1 - SHOWN
    assert f"pyvmm: {more} more guest-triggered messages like the above were not printed" in err
    assert len(err) == SHOWN + 2  # the count line and the summary line
