"""Breakpoints and single steps as Python events on debug-target (own IDT; bump() called three
times at CPL 0, then three times at CPL 3): from the library and from a `--handlers` file; a
handler that changes registers, one that stops the run. Watchpoints: test_debug_watch.py."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import iced_x86
import pytest
from conftest import GUESTS, guest, pyvmm

from vmm.cpu.modes import CpuMode
from vmm.debug.events import DebugEvent
from vmm.errors import ConfigError
from vmm.machine import Machine
from vmm.verdict import Stop

pytestmark = pytest.mark.kvm


def symbol(name: str) -> int:
    out = subprocess.run(["nm", str(GUESTS / "debug-target.elf")], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(ln.split()[0], 16) for ln in out.splitlines() if ln.split()[-1] == name]
    return addr


def machine(out: io.BytesIO) -> Machine:
    m = Machine(console=out)
    m.load_flat(guest("debug-target").read_bytes(), CpuMode.LONG)
    return m


def test_a_breakpoint_sees_each_cpl0_call_with_its_argument() -> None:
    seen: list[tuple[int, int, int]] = []
    out = io.BytesIO()
    with machine(out) as m:
        m.on_breakpoint(symbol("bump"), lambda e: seen.append((e.rip, int(e.regs.rdi), e.vcpu.index)))
        result = m.run(timeout=30)
    assert result.status == 99, result.reason
    # the three CPL-3 calls are not seen: instruction breakpoints do not fire at CPL 3 here
    assert seen == [(symbol("bump"), 1, 0), (symbol("bump"), 2, 0), (symbol("bump"), 3, 0)]
    text = out.getvalue().decode()
    assert "debug-target: counter 0xc" in text  # every call still ran once: the step over worked
    assert "traps cpu=0 total=0" in text  # and the guest never received a #DB or #BP


def test_a_breakpoint_handler_changes_a_register() -> None:
    out = io.BytesIO()

    def tenfold_first(e: object) -> None:
        regs = e.regs  # type: ignore[attr-defined]
        if regs.rdi == 1:
            regs.rdi = 10
            e.vcpu.set_regs(regs)  # type: ignore[attr-defined]

    with machine(out) as m:
        m.on_breakpoint(symbol("bump"), tenfold_first)
        assert m.run(timeout=30).status == 99
    assert "debug-target: counter 0x15" in out.getvalue().decode()  # 10 + 2 + 3, then 1 + 2 + 3


def test_a_breakpoint_handler_stops_the_run_before_the_instruction() -> None:
    out = io.BytesIO()
    with machine(out) as m:
        m.on_breakpoint(symbol("bump"), lambda e: Stop(42, "stopped at bump"))
        result = m.run(timeout=30)
        counter = m.memory.read_u64(symbol("counter"))
    assert (result.status, result.reason) == (42, "stopped at bump")
    assert counter == 0


def test_steps_move_rip_by_each_instruction_length() -> None:
    out = io.BytesIO()
    rips: list[int] = []
    with machine(out) as m:
        start = int(m.vcpu.get_regs().rip)
        code = m.memory.read(start, 256)

        def again(e: object) -> None:
            rips.append(e.rip)  # type: ignore[attr-defined]
            if len(rips) < 40:
                m.step(again)

        m.step(again)
        result = m.run(timeout=30)
    assert result.status == 99
    assert len(rips) == 40
    decoder = iced_x86.Decoder(64, code, ip=start)
    checked = 0
    prev = start
    for rip in rips:
        decoder.position, decoder.ip = prev - start, prev
        insn = decoder.decode()
        if insn.has_rep_prefix:  # a rep string instruction is stepped one iteration at a time
            assert rip in (prev, prev + insn.len), (hex(prev), str(insn))
        elif insn.flow_control == iced_x86.FlowControl.NEXT:
            assert rip == prev + insn.len, (hex(prev), str(insn))
            checked += 1
        if not start <= rip < start + 200:
            break
        prev = rip
    assert checked >= 5


def test_a_step_at_cpl3_is_refused() -> None:
    with machine(io.BytesIO()) as m:
        sregs = m.vcpu.get_sregs()
        sregs.cs.selector |= 3  # as if the vCPU were at CPL 3 (the refusal reads CS's RPL)
        m.vcpu.set_sregs(sregs)
        with pytest.raises(ConfigError, match="CPL 3"):
            m.step(lambda e: None)


def test_breakpoints_and_steps_from_a_handlers_file(tmp_path: Path) -> None:
    handlers = tmp_path / "debug_handlers.py"
    handlers.write_text(
        "import sys\n\n\n"
        "def bump(e):\n"
        "    sys.stderr.write(f'bump({e.regs.rdi})\\n')\n\n\n"
        "def stepped(e):\n"
        "    sys.stderr.write(f'stepped to {e.rip:#x}\\n')\n\n\n"
        "def setup(machine):\n"
        f"    machine.on_breakpoint({symbol('bump'):#x}, bump)\n"
        "    machine.step(stepped)\n"
    )
    proc = pyvmm("run", str(guest("debug-target")), "--handlers", str(handlers), "-q")
    assert proc.returncode == 99, proc.stderr
    err = proc.stderr.decode().splitlines()
    assert [ln for ln in err if ln.startswith("bump(")] == ["bump(1)", "bump(2)", "bump(3)"]
    assert len([ln for ln in err if ln.startswith("stepped to 0x")]) == 1


def test_stepping_stops_short_of_the_iretq_to_cpl3() -> None:
    """Steps followed from user_run() until m.step refuses, at the iretq that enters CPL 3 (a step
    across it would end at CPL 3, unreported, and can leak a #DB into the guest)."""
    out = io.BytesIO()
    stops: list[str] = []
    with machine(out) as m:

        def again(e: DebugEvent) -> None:
            try:
                m.step(again)
            except ConfigError as err:
                stops.append(str(err))

        m.on_breakpoint(symbol("user_run"), lambda e: m.step(again))
        result = m.run(timeout=30)
    assert result.status == 99
    assert len(stops) == 1 and "may return to CPL 3" in stops[0], stops
    assert "traps cpu=0 total=0" in out.getvalue().decode()
