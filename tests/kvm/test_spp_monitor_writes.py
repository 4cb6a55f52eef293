"""The monitor's own writes into a trapped page are atomic against the guest's locked instructions
there: `spp-stores` at CPL 3 runs `lock addl $1` 20,000 times on a dword of a protected page while a
thread of the test, as a device would, keeps adding one to the dword's upper half through
`GuestMemory.write`. KVM computes each `lock add` from what it read; a monitor write that lands
between that read and the engine's handling of the write must not be lost. The engine makes the
monitor's writes under its lock and carries the guest's instruction out again on top of them, so
at the end the lower half holds exactly the guest's count and the upper half exactly the
thread's. With the monitor's writes outside the lock the upper half loses increments."""

from __future__ import annotations

import struct
import threading

import pytest

from tests.spp_driver import LOCK_ADD32_LOOP, TARGET, Op, StoreDriver, stores_machine
from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

COUNTER = TARGET + 0x100  # sub-page 2 (allowed) of a page whose sub-page 0 is denied
ROUNDS = 20_000  # the guest's lock adds; below 65,536, so the lower half never carries over


def run(*, locked: bool = True) -> tuple[int, int, int]:
    """(status, the counter at the end, how many increments the thread made)."""
    started, finished = threading.Event(), threading.Event()
    made = [0]

    def device() -> None:
        while True:
            high = m.memory.read(COUNTER + 2, 2)
            m.memory.write(COUNTER + 2, struct.pack("<H", (int.from_bytes(high, "little") + 1) & 0xFFFF))
            made[0] += 1
            started.set()
            if finished.wait(0.0002) or made[0] == 0xFFFF:
                return

    thread = threading.Thread(target=device, daemon=True)

    def between(batch: int) -> None:
        if batch == 0:  # the thread's first write lands before the loop starts
            thread.start()
            assert started.wait(5)
        else:
            finished.set()
            thread.join(5)

    with stores_machine() as m:
        spp = m.enable_spp()
        if not locked:
            m.memory.trapped_writer = None  # the monitor's writes bypass the engine
        spp.protect(TARGET, 0xFFFFFFFE)
        StoreDriver(m, 3, [[Op(LOCK_ADD32_LOOP, COUNTER, 1, count=ROUNDS)]], between=between)
        result = m.run(timeout=60)
        finished.set()
        thread.join(5)
        return result.status, m.memory.read_u32(COUNTER), made[0]


def test_monitor_writes_race_the_guests_lock_add_and_neither_is_lost() -> None:
    status, counter, made = run()
    assert status == ExitStatus.OK
    assert made > 100  # the thread did write while the guest's loop ran
    assert (counter & 0xFFFF, counter >> 16) == (ROUNDS, made)
