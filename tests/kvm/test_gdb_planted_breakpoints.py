"""Software breakpoints (Z0) planted as int3, and the physical-memory mode, with real gdb on
kernel-target (its own supervisor-only page tables, CPL 0 only, own IDT): where only CPL-0 code
can run, `break` plants an int3 that stops there (the emulation-failure exit at it); gdb reads the
original byte, never the int3; stepping over it and continuing hits it again; the guest counts no
#BP. Where CPL-3 code could run (pyvmm's own identity map, U/S set), Z0 takes a debug register.
`maintenance packet Qqemu.PhyMemMode:1` makes gdb's addresses physical: an alias mapping that
reads the variable by virtual address is outside RAM as a physical one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import GUESTS
from gdb_session import finish, free_port, gdb, start, symbol

pytestmark = [pytest.mark.kvm, pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")]
ELF = GUESTS / "kernel-target.elf"
ALIAS = 0x40000000  # kernel-target maps physical x at virtual ALIAS + x too


def first_byte(name: str) -> int:
    image = (GUESTS / "kernel-target.bin").read_bytes()
    return image[symbol(ELF, name) - 0x100000]


def test_break_plants_an_int3_that_gdb_never_sees(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port, image="kernel-target")
    text = gdb(port, [
        "hbreak work", "continue", "delete",  # the guest's own page tables are in force from here
        "set breakpoint always-inserted on", "break work", "monitor info breakpoints",
        "x/1xb work", "continue", "p $rdi", "continue", "p $rdi", "delete", "continue",
    ], tmp_path, ELF)  # fmt: skip
    status, out, _ = finish(proc)
    work = symbol(ELF, "work")
    original = first_byte("work")
    assert original != 0xCC
    assert f"{work:#x}: int3 planted at {work:#x} (original byte {original:#04x})" in text, text
    assert f"<work>:\t{original:#04x}" in text  # the original byte, not the int3
    assert text.count("Breakpoint 2, 0x0000000000100030 in work ()") == 2
    assert "$1 = 2" in text and "$2 = 3" in text  # work(2) and work(3): each call stopped once
    assert status == 101 and "kernel-target: total 0x6" in out
    assert "traps cpu=0 total=0" in out  # no #BP reached the guest
    assert (GUESTS / "kernel-target.bin").read_bytes()[work - 0x100000] == original


def test_before_the_guest_tables_break_takes_a_debug_register(tmp_path: Path) -> None:
    """At the first instruction pyvmm's identity map (U/S set everywhere) is in force: an int3 there
    could be reached at CPL 3, where it would go to the guest, so a debug register is used."""
    port = free_port()
    proc = start(port, image="kernel-target")
    text = gdb(
        port, ["set breakpoint always-inserted on", "break work", "monitor info breakpoints", "kill"], tmp_path, ELF
    )
    finish(proc)
    assert f"{symbol(ELF, 'work'):#x}: debug register DR0" in text, text


def test_physical_memory_mode(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port, image="kernel-target")
    total = symbol(ELF, "total")
    text = gdb(port, [
        "hbreak work", "continue", "continue", "delete",  # total is 1 after work(1)
        f"x/gx {ALIAS + total:#x}",
        "maintenance packet qqemu.PhyMemMode", "maintenance packet Qqemu.PhyMemMode:1",
        "maintenance packet qqemu.PhyMemMode", f"x/gx {total:#x}",
        f"x/gx {ALIAS + total:#x}",  # the last: gdb's batch mode stops at its error
    ], tmp_path, ELF)  # fmt: skip
    finish(proc)
    assert f"{ALIAS + total:#x}:\t0x0000000000000001" in text, text  # the alias, by virtual address
    assert text.index('received: "0"') < text.index('received: "OK"') < text.index('received: "1"')
    assert f"{total:#x} <total>:\t0x0000000000000001" in text  # physical: the same bytes
    assert f"Cannot access memory at address {ALIAS + total:#x}" in text  # physical: beyond RAM


def test_a_debugger_that_detaches_takes_its_int3_along(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port, image="kernel-target")
    text = gdb(port, [
        "hbreak work", "continue", "delete",
        "set breakpoint always-inserted on", "break work", "monitor info breakpoints", "detach",
    ], tmp_path, ELF)  # fmt: skip
    status, out, _ = finish(proc)
    assert "int3 planted" in text
    # the int3 was put back before the guest ran on: work(2) and work(3) ran their own first byte
    assert status == 101 and "kernel-target: total 0x6" in out and "traps cpu=0 total=0" in out
