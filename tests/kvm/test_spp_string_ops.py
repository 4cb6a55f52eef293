"""`rep stosb` and `rep movsb` over ranges that mix allowed and denied sub-pages.

A string instruction is many accesses, not one: the CPU (and KVM's emulator) performs it element
by element, each iteration a separate 1-byte store. So each element is judged on its own: the
bytes that fall in allowed sub-pages land, the bytes in denied sub-pages stay as they were, and
every denied byte is one event of size 1. This differs on purpose from a single wide store (see
test_spp_plain_stores.py), where one denied byte drops the whole access.
"""

from __future__ import annotations

import pytest

from tests.spp_driver import REP_MOVSB, REP_STOSB, TARGET, Op, StoreDriver, stores_machine
from tests.spp_model import SppModel
from vmm.errors import ExitStatus
from vmm.machine import Machine
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
SRC_OFFSET = 8192  # the guest's `src` (guests/README.md: mailbox offset 8192)


def pattern(size: int, seed: int) -> bytes:
    return bytes((i * 41 + seed) % 251 + 1 for i in range(size))


# (cpl, start, count, masks): short at CPL 0, where every iteration is emulated; at CPL 3 long,
# across a page boundary and through two differently protected pages.
CASES = [
    pytest.param(0, TARGET + 0x40, 0x100, {TARGET: 0xFFFFFFFD}, id="cpl0-one-denied-subpage"),
    pytest.param(0, TARGET + 0xF40, 0x100, {TARGET: 0x7FFFFFFF, TARGET + PAGE: 0xFFFFFFFD}, id="cpl0-page-cross"),
    pytest.param(3, TARGET + 0x40, 0x1F80, {TARGET: 0x33333333, TARGET + PAGE: 0xCCCCCCCC}, id="cpl3-two-pages"),
]
MOVSB_CASES = [
    *CASES[:2],  # the guest refuses a rep movsb longer than its 4 KiB source
    pytest.param(3, TARGET + 0x7C0, 0x1000, {TARGET: 0x33333333, TARGET + PAGE: 0xCCCCCCCC}, id="cpl3-two-pages"),
]


def run_string_op(
    op: int, cpl: int, start: int, count: int, masks: dict[int, int], source: bytes
) -> tuple[int, bytes, bytes, list[SppEvent]]:
    """Runs one string op; returns status, memory before and after ([TARGET-PAGE, +4 pages)), events."""
    lo, size = TARGET - PAGE, 4 * PAGE
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(lo, pattern(size, 3))
        before = m.memory.read(lo, size)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        for page, mask in masks.items():
            spp.protect(page, mask)
        driver = StoreDriver(m, cpl, [[Op(op, start, source[0], 0, count)]])

        def load_source(batch: int, m: Machine = m) -> None:
            if batch == 0:  # the mailbox address is known from SYNC stage 0 on
                m.memory.write(driver.mailbox + SRC_OFFSET, source)

        driver.between = load_source
        result = m.run(timeout=20)
        after = m.memory.read(lo, size)
        refused = driver.refused()
    assert result.status == ExitStatus.OK, result.reason
    assert refused == 0
    return lo, before, after, events


def check_elementwise(
    lo: int, before: bytes, after: bytes, events: list[SppEvent], start: int, data: bytes, masks: dict[int, int]
) -> None:
    model = SppModel(lo, before)
    model.masks.update(masks)
    denied = [a for a in range(start, start + len(data)) if not model.writable(a)]
    for i, byte in enumerate(data):  # one store per element, as the CPU does it
        model.write(start + i, bytes([byte]))
    assert after == bytes(model.mem)
    assert denied and len(denied) < len(data)  # the range really mixes both kinds
    assert [e.gpa for e in events] == denied
    assert all(e.size == 1 and e.write_gpa == e.gpa and e.backend == "software" for e in events)
    assert [e.data for e in events] == [bytes([data[a - start]]) for a in denied]


@pytest.mark.parametrize(("cpl", "start", "count", "masks"), CASES)
def test_rep_stosb(cpl: int, start: int, count: int, masks: dict[int, int]) -> None:
    fill = bytes([0xA5])
    lo, before, after, events = run_string_op(REP_STOSB, cpl, start, count, masks, fill)
    check_elementwise(lo, before, after, events, start, fill * count, masks)


@pytest.mark.parametrize(("cpl", "start", "count", "masks"), MOVSB_CASES)
def test_rep_movsb(cpl: int, start: int, count: int, masks: dict[int, int]) -> None:
    source = bytes((i * 13 + 7) % 256 for i in range(4096))
    lo, before, after, events = run_string_op(REP_MOVSB, cpl, start, count, masks, source)
    check_elementwise(lo, before, after, events, start, source[:count], masks)
