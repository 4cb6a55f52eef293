"""Plain `mov` stores of 1, 2, 4 and 8 bytes into a protected page, aligned and not, at CPL 0 (where
KVM emulates the guest) and CPL 3 (where the CPU runs it and only the trapped store is emulated).

The page's sub-pages alternate: even ones writable, odd ones denied. Every run is checked three
ways: guest memory byte for byte against the reference model, the exact events a recording policy
saw, and the run's status. Reads of protected memory must neither be blocked nor cost an exit.
"""

from __future__ import annotations

import pytest

from tests.spp_driver import READ64, STORE8, STORE16, STORE32, STORE64, TARGET, Op, StoreDriver, stores_machine
from tests.spp_model import SppModel
from vmm.errors import ExitStatus
from vmm.runner.observe import ExitStats
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
MASK = 0x55555555  # bit i set = sub-page i writable: even sub-pages allowed, odd ones denied
STORE_OPS = {1: STORE8, 2: STORE16, 4: STORE32, 8: STORE64}
IMAGE_TEXT = range(0x100000, 0x101000)  # the guest's code page: every store's RIP lies there


def pattern(size: int, seed: int) -> bytes:
    """Non-zero filler, so a store of zeros or a stray write is visible."""
    return bytes((i * 37 + seed) % 255 + 1 for i in range(size))


def value_for(k: int) -> int:
    """A distinct 8-byte value per op, without zero bytes."""
    return int.from_bytes(bytes((k * 8 + j) % 250 + 3 for j in range(8)), "little")


def stores(width: int) -> list[tuple[int, str]]:
    """(address, what it tests) of the batch for one store width."""
    cases = [
        (TARGET + 0x100, "allowed, aligned"),
        (TARGET + 0x111, "allowed, unaligned"),
        (TARGET + 0x180 - width, "allowed, ending on the last byte before a denied sub-page"),
        (TARGET + 0x180, "denied, aligned"),
        (TARGET + 0x193, "denied, unaligned"),
        (TARGET + 0x1FF - width + 1, "denied, ending on the sub-page's last byte"),
        (TARGET + 0x1000 + 0x20, "the unprotected page after"),
    ]
    if width > 1:
        cases += [
            (TARGET + 0x180 - width // 2, "crossing from an allowed into a denied sub-page"),
            (TARGET + 0x200 - width // 2, "crossing from a denied into an allowed sub-page"),
            (TARGET + 0x180 - 1, "one byte allowed, the rest denied"),
        ]
    return cases


@pytest.mark.parametrize("cpl", [0, 3])
@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_stores_into_allowed_and_denied_subpages(cpl: int, width: int) -> None:
    lo, size = TARGET - PAGE, 3 * PAGE
    ops = [Op(STORE_OPS[width], addr, value_for(k)) for k, (addr, _) in enumerate(stores(width))]
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(lo, pattern(size, width))
        spp = m.enable_spp()
        spp.add_policy(events.append)  # records, returns None: the default verdict (Deny) applies
        spp.protect(TARGET, MASK)
        model = SppModel(lo, m.memory.read(lo, size))
        model.masks[TARGET] = MASK

        driver = StoreDriver(m, cpl, [ops])
        result = m.run(timeout=20)
        after = m.memory.read(lo, size)
        refused = driver.refused()

    assert result.status == ExitStatus.OK, result.reason
    assert refused == 0
    expected_events = []
    for op, (addr, what) in zip(ops, stores(width), strict=True):
        data = op.value.to_bytes(8, "little")[:width]
        if not model.write(addr, data):
            first_denied = next(a for a in range(addr, addr + width) if not model.writable(a))
            expected_events.append((first_denied, addr, width, data, what))
    assert after == bytes(model.mem), "memory differs from the model"
    # the cases are built so both outcomes occur at every width
    assert expected_events and len(expected_events) < len(ops)

    assert len(events) == len(expected_events)
    for ev, (gpa, addr, w, data, what) in zip(events, expected_events, strict=True):
        assert (ev.gpa, ev.write_gpa, ev.size, ev.data) == (gpa, addr, w, data), what
        assert ev.backend == "software"
        assert ev.page_mask == MASK
        assert ev.vcpu == 0
        assert ev.rip in IMAGE_TEXT


@pytest.mark.parametrize("cpl", [0, 3])
def test_crossing_store_names_the_first_denied_byte(cpl: int) -> None:
    """An 8-byte store with 5 bytes in allowed sub-page 2 and 3 in denied sub-page 3: nothing lands,
    and the event points at the first byte of sub-page 3, not at the store's start."""
    addr = TARGET + 0x180 - 5
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(TARGET, pattern(PAGE, 9))
        before = m.memory.read(TARGET, PAGE)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(TARGET, MASK)
        StoreDriver(m, cpl, [[Op(STORE64, addr, 0x0807060504030201)]])
        result = m.run(timeout=20)
        after = m.memory.read(TARGET, PAGE)

    assert result.status == ExitStatus.OK, result.reason
    assert after == before
    assert len(events) == 1
    assert events[0].gpa == TARGET + 0x180
    assert events[0].write_gpa == addr
    assert events[0].subpage == 3 and events[0].page == TARGET


@pytest.mark.parametrize("cpl", [0, 3])
def test_reads_of_protected_memory_see_the_data_without_exits(cpl: int) -> None:
    """Protected pages sit behind read-only memslots: loads are served by the hardware (or by
    KVM's emulator at CPL 0) from RAM, so they return what is there and never reach the engine."""
    addrs = [TARGET + off for off in (0x0, 0x80, 0x185, 0x7F9, 0xFF8)] * 20  # denied and allowed
    events: list[SppEvent] = []
    with stores_machine() as m:
        content = pattern(PAGE, 77)
        m.memory.write(TARGET, content)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(TARGET, 0)  # every sub-page denied
        m.stats = ExitStats()
        driver = StoreDriver(m, cpl, [[Op(READ64, a) for a in addrs]])
        result = m.run(timeout=20)
        got = [driver.value2(i) for i in range(len(addrs))]
        table = dict(m.stats.table)

    assert result.status == ExitStatus.OK, result.reason
    assert got == [int.from_bytes(content[a - TARGET : a - TARGET + 8], "little") for a in addrs]
    assert events == []
    assert "MMIO" not in table
    # SYNC stage 0, SYNC after the batch, DONE, and at most one watchdog kick: nothing per read
    assert result.exits <= 4, table
