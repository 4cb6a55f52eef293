"""Stores that cross a 4 KiB page boundary into or out of a protected page.

KVM splits such a store at the page boundary. If the neighbouring page were plain RAM, KVM would
write its part itself before the engine ever saw the protected part, so half a denied store would
land. The engine therefore traps the neighbour of a denied edge sub-page too (a guard page: every
write allowed, but judged first). The checks: a store crossing into denied sub-page 0 or out of
denied sub-page 31 changes neither page; a store crossing into an allowed edge sub-page lands
whole; and plain stores inside a guard page land without events.
"""

from __future__ import annotations

import pytest

from tests.spp_driver import STORE32, STORE64, TARGET, Op, StoreDriver, stores_machine
from tests.spp_model import SppModel
from vmm.errors import ExitStatus
from vmm.spp.event import SppEvent
from vmm.spp.software import SoftwareSpp

pytestmark = pytest.mark.kvm

PAGE = 4096
P = TARGET  # sub-pages 0 and 31 denied, the rest allowed: both neighbours become guards
P_MASK = 0x7FFFFFFE
Q = TARGET + 4 * PAGE  # only sub-pages 0 and 31 allowed: its neighbours need no guard
Q_MASK = 0x80000001
LO, HI = P - PAGE, Q + 2 * PAGE  # everything the test looks at, with P+2 .. Q-2 in between


def pattern(size: int) -> bytes:
    return bytes((i * 29 + 5) % 253 + 1 for i in range(size))


def crossing_ops(width: int) -> list[tuple[Op, str]]:
    # split unevenly for 8 bytes, so neither half is a natural fragment size
    k = 2 if width == 4 else 3
    op = STORE32 if width == 4 else STORE64
    return [
        (Op(op, P - k, 0x1111111111111111), "into denied sub-page 0 from the page before"),
        (Op(op, P + PAGE - k, 0x2222222222222222), "out of denied sub-page 31 into the page after"),
        (Op(op, P - 0x40, 0x3333333333333333), "inside the guard page before"),
        (Op(op, P + PAGE + 0x40, 0x4444444444444444), "inside the guard page after"),
        (Op(op, Q - k, 0x5555555555555555), "into allowed sub-page 0 from the page before"),
        (Op(op, Q + PAGE - k, 0x6666666666666666), "out of allowed sub-page 31 into the page after"),
    ]


@pytest.mark.parametrize("cpl", [0, 3])
@pytest.mark.parametrize("width", [4, 8])
def test_page_crossing_stores(cpl: int, width: int) -> None:
    cases = crossing_ops(width)
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(LO, pattern(HI - LO))
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(P, P_MASK)
        spp.protect(Q, Q_MASK)
        model = SppModel(LO, m.memory.read(LO, HI - LO))
        model.masks.update({P: P_MASK, Q: Q_MASK})
        before = m.memory.read(LO, HI - LO)

        StoreDriver(m, cpl, [[op for op, _ in cases]])
        result = m.run(timeout=20)
        after = m.memory.read(LO, HI - LO)

    assert result.status == ExitStatus.OK, result.reason
    landed = {what: model.write(op.addr, op.value.to_bytes(8, "little")[:width]) for op, what in cases}
    assert landed == {what: i >= 2 for i, (_, what) in enumerate(cases)}  # the model agrees on the intent
    assert after == bytes(model.mem)

    # spelled out for the two denied crossings: not one byte of either page changed
    for op, _ in cases[:2]:
        lo = op.addr - LO
        assert after[lo : lo + width] == before[lo : lo + width]

    assert [(e.gpa, e.write_gpa, e.size) for e in events] == [
        (P, P - (2 if width == 4 else 3), width),  # the first denied byte is the page's first byte
        (P + PAGE - (2 if width == 4 else 3), P + PAGE - (2 if width == 4 else 3), width),
    ]
    assert [e.data for e in events] == [op.value.to_bytes(8, "little")[:width] for op, _ in cases[:2]]
    assert all(e.backend == "software" and e.page_mask == P_MASK for e in events)


def test_guard_pages_follow_the_edge_subpages() -> None:
    """The engine traps exactly the neighbours it needs: a guard before a page only while its
    sub-page 0 is denied, after it only while sub-page 31 is; releasing the page drops both."""
    with stores_machine() as m:
        spp = m.enable_spp()
        backend = spp.backend
        assert isinstance(backend, SoftwareSpp)
        spp.protect(P, P_MASK)
        assert backend.trapped == {P - PAGE, P, P + PAGE}
        spp.protect(P, 0xFFFFFFFE)  # only sub-page 0 denied
        assert backend.trapped == {P - PAGE, P}
        spp.protect(P, Q_MASK)  # both edges allowed
        assert backend.trapped == {P}
        spp.release(P)
        assert backend.trapped == set()
