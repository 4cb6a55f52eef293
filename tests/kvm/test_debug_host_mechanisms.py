"""Which of KVM's guest-debug mechanisms reach the monitor on this host, at CPL 0 and at CPL 3:
the experiment behind README's host notes. debug-target (own GDT, TSS, IDT; its handlers count
every exception) calls bump() three times at CPL 0, prints a line, then three times at CPL 3.
Each mechanism is armed either from the start (CPL 0) or from the 0xe9 handler when that line is
printed (CPL 3), and what arrives is recorded: KVM_EXIT_DEBUG in the monitor, or an exception
counted by the guest's own handlers, or nothing at all."""

from __future__ import annotations

import io
import re
import subprocess
from typing import Any

import pytest
from conftest import GUESTS, guest

from kvm_abi import constants as C
from kvm_abi import exits as ke
from vmm.cpu.modes import CpuMode
from vmm.kvm.exits import DebugExit, InternalErrorExit, IoExit
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

STEP_BUDGET = 20000  # steps followed into the CPL-3 phase (a few hundred instructions)
ENABLE, STEP, HW = C.KVM_GUESTDBG_ENABLE, C.KVM_GUESTDBG_SINGLESTEP, C.KVM_GUESTDBG_USE_HW_BP


def symbol(name: str) -> int:
    out = subprocess.run(["nm", str(GUESTS / "debug-target.elf")], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(ln.split()[0], 16) for ln in out.splitlines() if ln.split()[-1] == name]
    return addr


def mechanism(name: str) -> tuple[int, list[int]]:
    regs = [0] * 8
    if name == "single-step":
        return ENABLE | STEP, regs
    if name == "dr0-instruction":
        regs[0], regs[7] = symbol("bump"), 0x1  # L0, R/W 00 (execute), LEN 00
        return ENABLE | HW, regs
    regs[0], regs[7] = symbol("counter"), 0x1 | (0b01 << 16) | (0b10 << 18)  # L0, write, 8 bytes
    return ENABLE | HW, regs


def experiment(name: str, cpl: int) -> tuple[list[tuple[int, int]], str, int]:
    """(the debug exits as (pc, CPL), the guest's output, the run's status)."""
    control, regs = mechanism(name)
    out = io.BytesIO()
    exits: list[tuple[int, int]] = []
    with Machine(console=out) as m:
        m.load_flat(guest("debug-target").read_bytes(), CpuMode.LONG)
        builtin = m.debugcon.handle_io

        def debugcon(ex: IoExit) -> None:
            builtin(ex)
            armed = m.vcpu.guest_debug
            if cpl == 3 and not armed and ex.value == ord("\n") and b"cpl0 counter" in out.getvalue():
                m.vcpu.set_guest_debug(control, regs)  # from the vCPU's own thread, outside KVM_RUN

        def on_debug(ex: DebugExit) -> None:
            exits.append((ex.pc, int(m.vcpu.get_sregs().cs.selector) & 3))
            # A step armed for the CPL-3 phase starts at CPL 0 (the 0xe9 write): keep stepping into
            # CPL 3 (bounded). Anything else: one observation is enough, disarm and let the guest go on.
            if cpl == 0 or name != "single-step" or len(exits) > STEP_BUDGET:
                m.vcpu.set_guest_debug(0)

        m.on_io(0xE9, 1, debugcon, replace=True)
        m.on_exit(DebugExit, on_debug)
        if cpl == 0:
            m.vcpu.set_guest_debug(control, regs)
        result = m.run(timeout=30)
        m.console.flush()
    return exits, out.getvalue().decode(), result.status


def traps_line(output: str) -> str:
    (line,) = re.findall(r"^traps cpu=0 .*$", output, re.M)
    return line


def test_cpl0_single_step_reaches_the_monitor_at_the_next_instruction() -> None:
    exits, output, status = experiment("single-step", 0)
    assert status == 99
    assert exits and exits[0][1] == 0
    assert traps_line(output) == "traps cpu=0 total=0"


def test_cpl0_instruction_breakpoint_in_dr0_reaches_the_monitor() -> None:
    exits, output, status = experiment("dr0-instruction", 0)
    assert status == 99
    assert exits == [(symbol("bump"), 0)]
    assert traps_line(output) == "traps cpu=0 total=0"


def test_cpl0_data_breakpoint_in_dr0_never_fires() -> None:
    # CPL-0 code runs in KVM's instruction emulator here, which checks instruction breakpoints only
    exits, output, status = experiment("dr0-write", 0)
    assert status == 99
    assert exits == []
    assert "debug-target: counter 0xc" in output
    assert traps_line(output) == "traps cpu=0 total=0"  # nor did the guest get a #DB


def test_cpl3_instruction_and_data_breakpoints_never_fire() -> None:
    for name in ("dr0-instruction", "dr0-write"):
        exits, output, status = experiment(name, 3)
        assert status == 99, name
        assert exits == [], name
        assert "debug-target: counter 0xc" in output, name
        assert traps_line(output) == "traps cpu=0 total=0", name


def test_cpl3_single_steps_do_not_arrive_and_resume_back_at_cpl0() -> None:
    exits, output, status = experiment("single-step", 3)
    assert status == 99
    assert "debug-target: counter 0xc" in output
    assert exits and len(exits) <= STEP_BUDGET
    assert all(cpl == 0 for _, cpl in exits)  # not one step reported at CPL 3
    assert symbol("bump") not in {pc for pc, _ in exits}  # the CPL-3 calls of bump() ran unobserved
    assert exits[-1][0] in range(symbol("debug_exit"), symbol("debug_exit") + 8)  # steps came back at CPL 0
    # The guest's own handlers counted no #DB in this short CPL-3 run (longer ones can receive one:
    # README, host notes), so a step armed across CPL 3 silently loses those instructions.
    assert traps_line(output) == "traps cpu=0 total=0"


def planted_int3(cpl: int, sw_bp: bool) -> tuple[list[tuple[int, int, bytes | None]], str, int]:
    """An int3 the monitor writes over bump()'s first byte, armed at the start (CPL 0) or from the
    0xe9 line (CPL 3), with or without USE_SW_BP: (emulation failures as (suberror, RIP, the
    bytes KVM fetched), the guest's output, the status). The byte is put back at the first one."""
    out = io.BytesIO()
    failures: list[tuple[int, int, bytes | None]] = []
    bump = symbol("bump")
    with Machine(console=out) as m:
        m.load_flat(guest("debug-target").read_bytes(), CpuMode.LONG)
        original = m.memory.read(bump, 1)
        builtin = m.debugcon.handle_io

        def plant() -> None:
            m.memory.write(bump, b"\xcc")
            if sw_bp:
                m.vcpu.set_guest_debug(ENABLE | C.KVM_GUESTDBG_USE_SW_BP)

        def debugcon(ex: IoExit) -> None:
            builtin(ex)
            if cpl == 3 and ex.value == ord("\n") and out.getvalue().endswith(b"cpl0 counter 0x6\n"):
                plant()

        def on_failure(ex: InternalErrorExit) -> None:
            failures.append((ex.suberror, int(m.vcpu.get_regs().rip), ex.insn_bytes))
            m.memory.write(bump, original)

        m.on_io(0xE9, 1, debugcon, replace=True)
        m.on_exit(InternalErrorExit, on_failure)
        m.on_exit(DebugExit, lambda ex: failures.append((-1, ex.pc, None)))
        if cpl == 0:
            plant()
        result = m.run(timeout=30)
        m.console.flush()
    return failures, out.getvalue().decode(), result.status


def test_cpl0_planted_int3_ends_in_an_emulation_failure_at_it() -> None:
    # KVM's emulator, which runs CPL-0 code here, lacks int3: the failure exit is at the int3, with
    # nothing executed and no #BP in the guest, USE_SW_BP or not. pyvmm's Z0 stops there.
    for sw_bp in (False, True):
        failures, output, status = planted_int3(0, sw_bp)
        assert status == 99, sw_bp
        assert len(failures) == 1, (sw_bp, failures)
        suberror, rip, insn = failures[0]
        assert suberror == ke.KVM_INTERNAL_ERROR_EMULATION and rip == symbol("bump")
        assert insn is not None and insn[0] == 0xCC
        assert traps_line(output) == "traps cpu=0 total=0" and "cpl0 counter 0x6" in output


def test_cpl3_planted_int3_goes_to_the_guests_own_handler() -> None:
    # at CPL 3 the int3 raises #BP inside the guest even with USE_SW_BP: nothing reaches the monitor
    for sw_bp in (False, True):
        failures, output, status = planted_int3(3, sw_bp)
        assert status == 99, sw_bp
        assert failures == [], sw_bp
        assert traps_line(output) == "traps cpu=0 total=3 v3=3", sw_bp


def page_without_memslot(image: str, var: str) -> tuple[int, int, str, int]:
    """Run `image` with the page holding `var` left out of the memslots (the SPP engine's MMIO
    handler over RAM serves every access to it from RAM): (reads of `var` seen, the status, the
    output, the CR2 at the end)."""
    elf = GUESTS / f"{image}.elf"
    out_nm = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(ln.split()[0], 16) for ln in out_nm.splitlines() if ln.split()[-1] == var]
    reads: list[int] = []
    out = io.BytesIO()
    with Machine(console=out) as m:
        m.load_flat(guest(image).read_bytes(), CpuMode.LONG)
        spp = m.enable_spp()
        spp.protect(addr & ~0xFFF, 0xFFFFFFFF & ~(1 << 31))  # the page in a memslot of its own
        (slot,) = [s for s in m.vm.memslots.values() if s.gpa == addr & ~0xFFF]
        m.vm.delete_memslot(slot.slot)  # ... and then in none
        engine = spp.backend

        def watch_reads(ex: Any) -> Any:
            if not ex.is_write and ex.address <= addr < ex.address + ex.length:
                reads.append(ex.address)
            return engine.handle_mmio(ex)  # type: ignore[attr-defined]

        m.board.mmio.insert(addr & ~0xFFF, 0x1000, watch_reads, name="reads", replace=True)
        result = m.run(timeout=30)
        m.console.flush()
        cr2 = int(m.vcpu.get_sregs().cr2)
    return len(reads), result.status, out.getvalue().decode(), cr2


def test_a_page_without_memslot_delivers_reads_at_both_cpls_but_can_kill_a_guest() -> None:
    # The experiment behind refusing read watchpoints (README, host notes). debug-target, on pyvmm's
    # page tables, runs correctly with counter's page unmapped, and every read of counter arrives:
    # 3 in bump() at CPL 0, 3 at CPL 3, 2 for the two lines printed.
    reads, status, output, _ = page_without_memslot("debug-target", "counter")
    assert status == 99 and reads == 8
    assert "debug-target: counter 0xc" in output and traps_line(output) == "traps cpu=0 total=0"
    # kernel-target, whose own tables map that RAM with 2 MiB pages, faults fetching the instruction
    # after its CR3 load (a #PF at its own RIP, with nothing there unmapped) and triple-faults.
    reads, status, output, cr2 = page_without_memslot("kernel-target", "total")
    assert status == 8 and reads == 0 and output == ""
    assert symbol_in("kernel-target", "paging_on") <= cr2 < symbol_in("kernel-target", "main")


def symbol_in(image: str, name: str) -> int:
    out = subprocess.run(["nm", str(GUESTS / f"{image}.elf")], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(ln.split()[0], 16) for ln in out.splitlines() if ln.split()[-1] == name]
    return addr
