"""The debugging state across a snapshot restored in the same process: an MSR handler (KVM's MSR
filter stays with the VM), a breakpoint (the vCPU's guest-debug debug registers stay set while the
guest's own DR0-DR7 come back from the snapshot) and a watchpoint all fire again on the rerun. A
watch is the monitor's, like a handler: a snapshot leaves its page out, so a watch removed after
the snapshot does not come back as a protection nobody answers (the guest's stores would be
dropped), and one added after it is not lost."""

from __future__ import annotations

import io
import subprocess

import pytest
from conftest import GUESTS, guest

from vmm.cpu.modes import CpuMode
from vmm.machine import Machine

pytestmark = pytest.mark.kvm
ANSWERED = 0x40000F00


def symbol(name: str) -> int:
    out = subprocess.run(["nm", str(GUESTS / "debug-target.elf")], capture_output=True, text=True, check=True).stdout
    (addr,) = [int(ln.split()[0], 16) for ln in out.splitlines() if ln.split()[-1] == name]
    return addr


def test_an_msr_handler_answers_again_after_a_restore() -> None:
    reads: list[int] = []
    out = io.BytesIO()
    with Machine(console=out) as m:
        m.load_flat(guest("msr-probe").read_bytes(), CpuMode.LONG)
        m.on_msr(ANSWERED, lambda a: reads.append(a.index) or 0x1122334455667788, writes=False)
        snap = m.snapshot()
        first = m.run(timeout=30).status
        text = out.getvalue()
        m.restore(snap)
        second = m.run(timeout=30).status
    assert first == second == 97
    assert reads == [ANSWERED, ANSWERED]  # once per run: the filter survived the restore
    assert out.getvalue() == text * 2 and b"0x1122334455667788" in text


def test_breakpoints_and_watches_fire_again_after_a_restore() -> None:
    hits: list[str] = []
    out = io.BytesIO()
    with Machine(console=out) as m:
        m.load_flat(guest("debug-target").read_bytes(), CpuMode.LONG)
        m.on_breakpoint(symbol("bump"), lambda e: hits.append("bp"))
        m.watch(symbol("counter"), 8, "w", lambda e: hits.append("watch"))
        snap = m.snapshot()
        assert snap.spp in (None, {})  # the watch's page is not part of the snapshot
        assert m.run(timeout=30).status == 99
        m.restore(snap)
        assert m.run(timeout=30).status == 99
    # per run: three CPL-0 breakpoints; seven stores into counter (.bss clearing, six bump calls)
    assert hits.count("bp") == 6 and hits.count("watch") == 14
    assert out.getvalue().count(b"debug-target: counter 0xc\n") == 2


def test_a_watch_removed_or_added_after_the_snapshot_stays_so() -> None:
    seen: list[int] = []
    out = io.BytesIO()
    with Machine(console=out) as m:
        m.load_flat(guest("debug-target").read_bytes(), CpuMode.LONG)
        wid = m.watch(symbol("counter"), 8, "w", lambda e: seen.append(1))
        snap = m.snapshot()
        m.remove_watch(wid)
        m.restore(snap)
        assert m.spp is not None and m.spp.mask(symbol("counter")) == 0xFFFFFFFF  # not brought back
        assert m.run(timeout=30).status == 99
        assert not seen and b"debug-target: counter 0xc" in out.getvalue()  # no store was dropped
        m.restore(snap)
        m.watch(symbol("last_call"), 8, "w", lambda e: seen.append(2))
        m.reset(snap)  # the fast path leaves it too
        m.reset(snap)
        assert m.spp.mask(symbol("last_call")) != 0xFFFFFFFF
        assert m.run(timeout=30).status == 99
    assert seen == [2] * 7  # .bss clearing, then bump() x6
