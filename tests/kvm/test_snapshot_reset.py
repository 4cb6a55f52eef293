"""`m.reset(snap)` in a loop: the fuzz-parser guest is snapshotted at its input mailbox, then
10,000 times fed an input that writes a few RAM pages, run to DONE and reset. RAM afterwards is
byte-identical to the snapshot (hashed whole), the guest behaves the same on every round (its
scratch counters start from the snapshot's values, so its writes would pile up otherwise), and
neither file descriptors nor resident memory grow."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from conftest import guest

from vmm import CpuMode, Machine
from vmm.devices.ucall import SYNC, Ucall
from vmm.snapshot import Snapshot

pytestmark = pytest.mark.kvm

MEM = 16 << 20
PAGE = 4096
INPUT = b"P\x01P\x05P\x09S\x10\x22P\x0e"  # four scratch pages and the table page


def ram_hash(m: Machine) -> str:
    return hashlib.sha256(m.memory.read(0, MEM)).hexdigest()


def snapshot_hash(snap: Snapshot) -> str:
    h = hashlib.sha256()
    zero = bytes(PAGE)
    for gpa in range(0, MEM, PAGE):
        h.update(snap.ram.get(gpa, zero))
    return h.hexdigest()


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_ten_thousand_resets_leave_ram_as_the_snapshot_and_nothing_grows() -> None:
    m = Machine(MEM, console=io.BytesIO())
    m.load_flat(guest("fuzz-parser").read_bytes(), CpuMode.LONG)
    mailbox: list[int] = []
    records: list[int] = []

    def on_sync(call: Ucall) -> None:
        (mailbox if call.args[0] == 0 else records).append(call.args[1])

    m.ucall.on(SYNC, on_sync)
    trigger = m.snapshot_at("sync:1")
    m.run(timeout=10)
    assert trigger.fired()
    snap = m.snapshot()
    expected = snapshot_hash(snap)
    assert ram_hash(m) == expected
    fds = len(os.listdir("/proc/self/fd"))
    rss = 0
    for n in range(10_000):
        m.memory.write(mailbox[0], len(INPUT).to_bytes(4, "little") + INPUT)
        result = m.run(timeout=5)
        assert result.status == 0, result.reason
        if n == 0:
            assert ram_hash(m) != expected  # the input really wrote RAM
        m.reset(snap)
        if n in (0, 1, 2):
            assert ram_hash(m) == expected, f"RAM differs from the snapshot after reset {n + 1}"
        if n == 999:
            rss = rss_kib()
    assert ram_hash(m) == expected
    assert records == [5] * 10_000  # every round parsed the same five records
    assert len(os.listdir("/proc/self/fd")) == fds
    assert rss_kib() - rss < 4096, f"resident memory grew from {rss} KiB to {rss_kib()} KiB"
    m.close()
