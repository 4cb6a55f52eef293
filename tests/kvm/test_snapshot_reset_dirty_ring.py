"""`m.reset` with the dirty log in KVM's dirty rings (`Machine(dirty_ring=True)`) instead of the
per-slot bitmaps: the fuzz-parser loop leaves RAM byte-identical to the snapshot after every
reset, and `dirty-pages`, which writes 2048 pages at CPL 0 between two SYNCs, has every one of
them copied back. The ring holds every page of RAM (a smaller one overflows here: CPL-0 stores
are logged by KVM's emulator, which does not stop the run when the ring fills)."""

from __future__ import annotations

import hashlib
import io

import pytest
from conftest import guest

from vmm import CpuMode, Machine
from vmm.devices.ucall import SYNC, Ucall
from vmm.snapshot import Snapshot

pytestmark = pytest.mark.kvm

MEM = 16 << 20
PAGE = 4096
INPUT = b"P\x01P\x05P\x09S\x10\x22P\x0e"


def ram_hash(m: Machine) -> str:
    return hashlib.sha256(m.memory.read(0, MEM)).hexdigest()


def snapshot_hash(snap: Snapshot) -> str:
    zero = bytes(PAGE)
    return hashlib.sha256(b"".join(snap.ram.get(gpa, zero) for gpa in range(0, MEM, PAGE))).hexdigest()


def test_two_thousand_resets_through_the_ring_leave_ram_as_the_snapshot() -> None:
    m = Machine(MEM, console=io.BytesIO(), dirty_ring=True)
    m.load_flat(guest("fuzz-parser").read_bytes(), CpuMode.LONG)
    mailbox: list[int] = []
    records: list[int] = []

    def on_sync(call: Ucall) -> None:
        (mailbox if call.args[0] == 0 else records).append(call.args[1])

    m.ucall.on(SYNC, on_sync)
    with m:
        assert m.snapshot_at("sync:1") and m.run(timeout=10)
        snap = m.snapshot()
        expected = snapshot_hash(snap)
        mbox = mailbox[0]
        for i in range(2000):
            m.reset(snap)
            if i % 500 == 0:
                assert ram_hash(m) == expected, f"reset {i}"
            m.memory.write(mbox + 8, len(INPUT).to_bytes(8, "little") + INPUT)
            records.clear()
            assert m.run(timeout=10).status == 0
            assert records == records[:1] * len(records) or i == 0
        m.reset(snap)
        assert ram_hash(m) == expected
        assert m.board.slots.rings_emptied == 0


def test_two_thousand_pages_written_at_cpl0_are_all_copied_back() -> None:
    def machine(ring: bool) -> tuple[Machine, io.BytesIO]:
        out = io.BytesIO()
        m = Machine(MEM, console=out, dirty_ring=ring)
        m.load_flat(guest("dirty-pages").read_bytes(), CpuMode.LONG)
        return m, out

    plain, plain_out = machine(False)
    with plain:
        assert plain.run(timeout=20).status == 0
    m, out = machine(True)
    with m:
        m.snapshot_at("sync:1")
        m.run(timeout=20)
        snap = m.snapshot()
        expected = snapshot_hash(snap)
        m.reset(snap)  # the first reset restores whole and arms the log
        m.snapshot_at("sync:1")
        m.run(timeout=20)  # 2048 pages written again
        assert m.vm.dirty_ring_entries == 8192  # 4096 pages of RAM and KVM's reserve
        assert ram_hash(m) != expected
        m.reset(snap)
        assert ram_hash(m) == expected
        out.seek(0)
        out.truncate()
        assert m.run(timeout=20).status == 0
        assert out.getvalue() == plain_out.getvalue() and out.getvalue().startswith(b"dirty-pages: sum ")
