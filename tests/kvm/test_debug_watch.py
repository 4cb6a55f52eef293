"""Write watchpoints as Python events (`m.watch`, on the SPP engine's trapped pages) on
debug-target, whose bump() stores into `counter` three times at CPL 0 and three times at CPL 3:
every store is seen with the value written and RIP past it, at both CPLs; writes beside the
watched bytes in the same sub-page call nothing; a handler's Stop ends the run after the store;
a read watch, a page with SPP protection of its own and an unmapped address are refused by name;
and the same from a `--handlers` file."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from conftest import GUESTS, guest, one_line_error, pyvmm

from vmm.cpu.modes import CpuMode
from vmm.debug.events import DebugEvent
from vmm.errors import ConfigError, ExitStatus
from vmm.machine import Machine
from vmm.verdict import Stop

pytestmark = pytest.mark.kvm
STORE_END = 0x11  # bump(): RIP after its store into counter


def symbol(name: str) -> int:
    out = subprocess.run(["nm", str(GUESTS / "debug-target.elf")], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(ln.split()[0], 16) for ln in out.splitlines() if ln.split()[-1] == name]
    return addr


def machine(out: io.BytesIO) -> Machine:
    m = Machine(console=out)
    m.load_flat(guest("debug-target").read_bytes(), CpuMode.LONG)
    return m


def test_every_store_is_seen_with_its_value_and_rip_at_both_cpls() -> None:
    seen: list[tuple[int, int, int, int, int]] = []

    def on_write(e: DebugEvent) -> None:
        assert e.value is not None and e.written is not None and e.write_address is not None
        cpl = int(e.vcpu.get_sregs().cs.selector) & 3
        seen.append(
            (int.from_bytes(e.value, "little"), int.from_bytes(e.written, "little"), e.rip, cpl, e.write_address)
        )

    out = io.BytesIO()
    with machine(out) as m:
        m.watch(symbol("counter"), 8, "w", on_write)
        result = m.run(timeout=30)
        m.console.flush()
    assert result.status == 99, result.reason
    rip = symbol("bump") + STORE_END
    counter = symbol("counter")
    # first the start-up code clearing .bss (a store of zero, which gdb's `watch` would not report)
    value, written, at, cpl, where = seen[0]
    assert (value, written, cpl, where) == (0, 0, 0, counter) and symbol("_start") <= at < symbol("bump")
    assert seen[1:] == [(v, v, rip, cpl, counter) for v, cpl in ((1, 0), (3, 0), (6, 0), (7, 3), (9, 3), (12, 3))]
    text = out.getvalue().decode()
    assert "debug-target: counter 0xc" in text and "traps cpu=0 total=0" in text


def test_a_neighbour_in_the_same_subpage_calls_nothing() -> None:
    # last_call sits beside counter (same 128-byte sub-page): its stores are let through unseen
    assert symbol("last_call") >> 7 == symbol("counter") >> 7
    seen: list[int] = []
    out = io.BytesIO()
    with machine(out) as m:
        m.watch(symbol("counter"), 8, "w", lambda e: seen.append(e.rip))
        result = m.run(timeout=30)
        m.console.flush()
        assert m.spp is not None and m.spp.events  # the neighbour's stores did reach the engine
        neighbour = [ev for ev in m.spp.events if ev.write_gpa == symbol("last_call")]
    assert result.status == 99 and len(seen) == 7 and len(neighbour) == 7  # .bss clearing, then bump() x6


def test_a_handler_that_stops_ends_the_run_after_the_store() -> None:
    out = io.BytesIO()
    with machine(out) as m:
        m.watch(
            symbol("counter"),
            8,
            "w",
            lambda e: Stop(42, "counter changed") if e.value == bytes([3]) + bytes(7) else None,
        )
        result = m.run(timeout=30)
        assert int.from_bytes(m.memory.read(symbol("counter"), 8), "little") == 3  # the store took effect
        assert int(m.vcpu.get_regs().rip) == symbol("bump") + STORE_END
    assert (result.status, result.reason) == (42, "counter changed")


def test_removing_a_watch_releases_its_page() -> None:
    with machine(io.BytesIO()) as m:
        wid = m.watch(symbol("counter"), 8, "w", lambda e: None)
        assert m.spp is not None and m.spp.mask(symbol("counter")) != 0xFFFFFFFF
        m.remove_watch(wid)
        assert m.spp.mask(symbol("counter")) == 0xFFFFFFFF
        assert m.run(timeout=30).status == 99
        assert not m.spp.events


def test_refusals_name_the_reason() -> None:
    with machine(io.BytesIO()) as m:
        with pytest.raises(ConfigError, match="read watchpoints are not available"):
            m.watch(symbol("counter"), 8, "r", lambda e: None)
        with pytest.raises(ConfigError, match="read watchpoints are not available"):
            m.watch(symbol("counter"), 8, "rw", lambda e: None)
        with pytest.raises(ConfigError, match="is not mapped to guest RAM"):
            m.watch(0x7FFF_0000_0000, 8, "w", lambda e: None)
        with pytest.raises(ConfigError, match="the length is 1 to"):
            m.watch(symbol("counter"), 0, "w", lambda e: None)
        m.enable_spp().protect(symbol("counter") & ~0xFFF, 0xFFFFFFFE)
        with pytest.raises(ConfigError, match="has SPP protection of its own"):
            m.watch(symbol("counter"), 8, "w", lambda e: None)


def test_a_watch_from_a_handlers_file(tmp_path: Path) -> None:
    handlers = tmp_path / "watch_handlers.py"
    handlers.write_text(
        "import sys\n\n\n"
        "def changed(e):\n"
        "    sys.stderr.write(f'counter = {int.from_bytes(e.value, \"little\")} at {e.rip:#x}\\n')\n\n\n"
        "def setup(machine):\n"
        f"    machine.watch({symbol('counter'):#x}, 8, 'w', changed)\n"
    )
    proc = pyvmm("run", str(guest("debug-target")), "--handlers", str(handlers), "-q")
    assert proc.returncode == 99, proc.stderr
    lines = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("counter = ")]
    rip = symbol("bump") + STORE_END
    assert lines[1:] == [f"counter = {v} at {rip:#x}" for v in (1, 3, 6, 7, 9, 12)]
    assert lines[0].startswith("counter = 0 at ")  # .bss cleared at start-up
    bad = tmp_path / "read_watch.py"
    bad.write_text(f"def setup(machine):\n    machine.watch({symbol('counter'):#x}, 8, 'r', print)\n")
    line = one_line_error(pyvmm("run", str(guest("debug-target")), "--handlers", str(bad)), ExitStatus.USAGE)
    assert "read watchpoints are not available" in line


def test_a_watch_set_by_a_handler_during_the_run() -> None:
    """The first watch turns SPP on mid-run: the engine is told the run started (and ended), so
    its memslot changes go through the vCPU threads; the next run works the same."""
    seen: list[int] = []
    out = io.BytesIO()
    with machine(out) as m:

        def first_bump(e: DebugEvent) -> None:
            if not seen:
                m.watch(symbol("counter"), 8, "w", lambda w: seen.append(int.from_bytes(w.value or b"", "little")))

        m.on_breakpoint(symbol("bump"), first_bump)
        result = m.run(timeout=30)
        assert m.spp is not None and not m.spp._run_active  # told the run ended
    assert result.status == 99
    assert seen == [1, 3, 6, 7, 9, 12]  # from the first bump's own store on
