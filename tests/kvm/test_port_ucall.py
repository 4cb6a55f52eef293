"""The ucall port: SYNC, PRINT and DONE from a guest, a failed guest assertion, and hostile calls
that are rejected (or, under strict, stop the run) without harming the host."""

from __future__ import annotations

import errno
import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

EFAULT_RESULT = f"{-errno.EFAULT & 0xFFFFFFFF:08x}"  # -14 as the guest prints it: fffffff2


def test_ports_guest_sync_print_done() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("ports").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert m.ucall.syncs == [(1, 42)]
    assert b"print ok\n" in bytes(m.console.transcript)
    assert result.status == ExitStatus.OK
    assert result.reason == "guest signalled DONE"


def test_failed_guest_assertion() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("assert-fail").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.GUEST_ASSERT
    assert result.reason.endswith("assert-fail.c:11: 1 + 1 (wanted 0x3, got 0x2)")


def test_bad_ucalls_are_rejected_and_the_guest_continues() -> None:
    log = io.StringIO()
    with Machine(console=io.BytesIO(), log=log) as m:
        m.load_flat(guest("bad-ucall").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    rejections = [line for line in log.getvalue().splitlines() if line.startswith("pyvmm: rejected ucall")]
    assert len(rejections) == 2
    assert "0xfffff000" in rejections[0]  # the struct pointer itself
    transcript = bytes(m.console.transcript).decode()
    # the second struct was readable: the host told the guest -EFAULT through its result field
    assert f"bad-ucall: result 0x{EFAULT_RESULT}\n" in transcript
    assert result.status == ExitStatus.OK  # DONE after both rejections


def test_bad_ucall_stops_the_run_when_strict() -> None:
    log = io.StringIO()
    with Machine(console=io.BytesIO(), log=log, strict=True) as m:
        m.load_flat(guest("bad-ucall").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)

    assert result.status == ExitStatus.BAD_GUEST_REQUEST
    assert "bad ucall" in result.reason
    # stopped at the first bad call: the guest never got to the second step
    assert bytes(m.console.transcript) == b"bad-ucall: struct outside RAM\n"
    assert "rip=" in result.report
