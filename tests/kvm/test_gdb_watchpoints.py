"""Write watchpoints from real gdb (Z2 on the SPP engine's trapped pages): `watch` stops at each
store that changes the variable, with the new value and RIP past the store, at CPL 0 and CPL 3;
read and access watchpoints are refused (reads are not trapped here); the guest never sees a
trap, and its result is what it would have been."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import GUESTS
from gdb_session import finish, free_port, gdb, start, symbol

pytestmark = [pytest.mark.kvm, pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")]
ELF = GUESTS / "debug-target.elf"
STORE_END = 0x11  # bump(): RIP after its `add %rdi, counter` store


def test_watch_stops_at_every_store_with_the_new_value_at_both_cpls(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port)
    commands = ["watch *(unsigned long *)&counter"]
    for _ in range(6):
        commands += ["continue", "p/x $pc", "p $cs"]
    commands += ["delete", "continue"]
    text = gdb(port, commands, tmp_path, ELF)
    status, out, _ = finish(proc)
    news = [int(v) for v in re.findall(r"^New value = (\d+)$", text, re.M)]
    assert news == [1, 3, 6, 7, 9, 12], text  # bump(1..3) at CPL 0, then again at CPL 3
    pcs = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", text, re.M)]
    assert pcs == [symbol(ELF, "bump") + STORE_END] * 6  # reported after the store, as x86 does
    cses = [int(v) for v in re.findall(r"^\$\d+ = (\d+)$", text, re.M)]
    assert cses == [8, 8, 8, 0x1B, 0x1B, 0x1B]
    assert status == 99 and "debug-target: counter 0xc" in out
    assert "traps cpu=0 total=0" in out  # no exception reached the guest


def test_read_and_access_watchpoints_are_refused(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port)
    text = gdb(port, ["rwatch *(unsigned long *)&counter", "continue"], tmp_path, ELF)
    status, out, _ = finish(proc)
    assert "Could not insert hardware watchpoint" in text, text
    assert status == 99 and "debug-target: done" in out  # gdb detached; the guest ran on unharmed


def test_monitor_info_spp_shows_the_masks(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port, "--spp", f"{symbol(ELF, 'counter') & ~0xFFF:#x}:0xfffffffe")
    text = gdb(port, ["monitor info spp", "kill"], tmp_path, ELF)
    finish(proc)
    page = symbol(ELF, "counter") & ~0xFFF
    assert f"{page:#012x} mask 0xfffffffe denied sub-pages 0" in text, text


def test_stepi_at_cpl3_is_refused_and_the_guest_gets_no_debug_exception(tmp_path: Path) -> None:
    """Stopped at CPL 3 (by a watchpoint), a step would leak a #DB into the guest here: refused
    with a message, the vCPU left where it is."""
    port = free_port()
    proc = start(port)
    commands = [
        "watch *(unsigned long *)&counter",
        *["continue"] * 4,
        "delete",
        "p $cs",
        "stepi",
        "p/x $pc",
        "continue",
    ]
    text = gdb(port, commands, tmp_path, ELF)
    status, out, _ = finish(proc)
    assert "$1 = 27" in text  # CS 0x1b: at CPL 3
    assert "vCPU 0 is at CPL 3: single-step is not reported to the monitor there on this host" in text
    assert "Remote failure reply: E01" in text
    assert f"$2 = {symbol(ELF, 'bump') + STORE_END:#x}" in text  # not moved
    assert status == 99 and "traps cpu=0 total=0" in out  # and no #DB reached the guest
