"""Read-modify-write and stack stores into a protected page: `xchg`, `lock cmpxchg` and `push`.

These reach KVM as a read (served from RAM: reads are never blocked) plus a write (trapped). A
denied one must leave memory alone while the guest still sees the read half: `xchg` hands back the
old contents, `cmpxchg` compares against them. The guest copies what it got into the op's `value2`
field in the mailbox, so the test can check that side too.
"""

from __future__ import annotations

import pytest

from tests.spp_driver import LOCK_CMPXCHG64, PUSH64, TARGET, XCHG64, Op, StoreDriver, stores_machine
from vmm.errors import ExitStatus
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
MASK = 0xFFFFFFFD  # sub-page 1 (0x80-0xff) denied, the rest allowed
OLD = 0x0102030405060708  # what every target slot holds before the run
NEW = 0x1122334455667788

ALLOWED, DENIED, STRADDLE = TARGET + 0x10, TARGET + 0x90, TARGET + 0x7C  # the last: 4 bytes each side


def run(cpl: int, ops: list[Op]) -> tuple[list[int], list[SppEvent], bytes, list[int]]:
    """Status-checked run of one batch; returns memory qwords at the op addresses, the events,
    the whole page, and each op's value2 as the guest left it."""
    events: list[SppEvent] = []
    with stores_machine() as m:
        for op in ops:
            m.memory.write_u64(op.addr, OLD)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(TARGET, MASK)
        driver = StoreDriver(m, cpl, [ops])
        result = m.run(timeout=20)
        assert result.status == ExitStatus.OK, result.reason
        assert driver.refused() == 0
        got = [m.memory.read_u64(op.addr) for op in ops]
        value2 = [driver.value2(i) for i in range(len(ops))]
        page = m.memory.read(TARGET, PAGE)
    return got, events, page, value2


def page_holding(contents: dict[int, int]) -> bytes:
    """A zero page with the given qwords (address -> value) in place."""
    out = bytearray(PAGE)
    for addr, v in contents.items():
        out[addr - TARGET : addr - TARGET + 8] = v.to_bytes(8, "little")
    return bytes(out)


@pytest.mark.parametrize("cpl", [0, 3])
def test_xchg(cpl: int) -> None:
    ops = [Op(XCHG64, ALLOWED, NEW), Op(XCHG64, DENIED, NEW), Op(XCHG64, STRADDLE, NEW)]
    got, events, page, value2 = run(cpl, ops)
    assert got == [NEW, OLD, OLD]
    assert value2 == [OLD, OLD, OLD]  # the read half of a denied xchg still happened
    assert page == page_holding({ALLOWED: NEW, DENIED: OLD, STRADDLE: OLD})
    assert [(e.gpa, e.write_gpa, e.size, e.data) for e in events] == [
        (DENIED, DENIED, 8, NEW.to_bytes(8, "little")),
        (TARGET + 0x80, STRADDLE, 8, NEW.to_bytes(8, "little")),
    ]
    assert all(e.backend == "software" for e in events)


@pytest.mark.parametrize("cpl", [0, 3])
def test_lock_cmpxchg(cpl: int) -> None:
    ops = [
        Op(LOCK_CMPXCHG64, ALLOWED, NEW, OLD),  # expected value matches: swaps
        Op(LOCK_CMPXCHG64, DENIED, NEW, OLD),  # matches, but the write is denied
        Op(LOCK_CMPXCHG64, DENIED + 0x10, NEW, 0xDEAD),  # no match
    ]
    got, events, page, value2 = run(cpl, ops)
    assert got == [NEW, OLD, OLD]
    # RAX afterwards: the expected value when it matched, else memory's contents: OLD each time
    assert value2 == [OLD, OLD, OLD]
    assert page == page_holding({ALLOWED: NEW, DENIED: OLD, DENIED + 0x10: OLD})
    # A failed compare still makes a write cycle of the old value (SDM, CMPXCHG: "the destination
    # operand receives a write cycle without regard to the result of the comparison"), so a
    # denied sub-page sees it as a violation too; memory is unchanged either way.
    assert [(e.gpa, e.size, e.data) for e in events] == [
        (DENIED, 8, NEW.to_bytes(8, "little")),
        (DENIED + 0x10, 8, OLD.to_bytes(8, "little")),
    ]


@pytest.mark.parametrize("cpl", [0, 3])
def test_push_with_the_stack_in_a_protected_page(cpl: int) -> None:
    # PUSH64 points RSP just past addr, so the pushed qword lands exactly at addr
    ops = [Op(PUSH64, ALLOWED, NEW), Op(PUSH64, DENIED, NEW), Op(PUSH64, STRADDLE, NEW)]
    got, events, page, _ = run(cpl, ops)
    assert got == [NEW, OLD, OLD]
    assert page == page_holding({ALLOWED: NEW, DENIED: OLD, STRADDLE: OLD})
    assert [(e.gpa, e.write_gpa, e.size, e.data) for e in events] == [
        (DENIED, DENIED, 8, NEW.to_bytes(8, "little")),
        (TARGET + 0x80, STRADDLE, 8, NEW.to_bytes(8, "little")),
    ]
