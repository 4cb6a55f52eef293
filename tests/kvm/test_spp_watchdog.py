"""Writes KVM retries forever instead of reporting: `sgdt`/`sidt` into a trapped page, and the
accessed bit the CPU itself sets in a GDT descriptor on a segment load.

KVM re-enters the guest at the same instruction again and again without an exit; only the
engine's watchdog (a vCPU at the same RIP with no exit for two 50 ms periods) notices. It decodes
the instruction at RIP: `sgdt` and `sidt` are carried out from their decoded form (vmm.x86.tables,
a "software" event naming them, nothing stepped, so nothing the guest's own IDT could see); the
accessed-bit write, which belongs to no store instruction, is single-stepped. The run must finish
promptly with status 0, memory unchanged where denied, one event, and the guest's exception
counts at zero.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import pytest

from tests.spp_driver import LOAD_SEGMENT_FROM_GDT_AT, SGDT, SIDT, TARGET, Op, StoreDriver, stores_machine
from vmm.errors import ExitStatus
from vmm.machine import Machine, RunResult
from vmm.spp.controller import Policy
from vmm.spp.event import ALLOW, SppEvent, SppVerdict

pytestmark = pytest.mark.kvm

PAGE = 4096
MASK = 0xFFFFFFFE  # sub-page 0 denied
DENIED, ALLOWED = TARGET + 0x10, TARGET + 0x100
# where the guest records what `sgdt`/`sidt` store for its own tables (guests/README.md, spp-stores)
OWN_TABLE_RECORD = {SGDT: 12576, SIDT: 12592}
QUICK = 2.0  # seconds: a few watchdog periods plus slack, far below the 20 s timeout


def filler(size: int) -> bytes:
    return bytes(0xF0 + i % 15 for i in range(size))  # differs from every byte sgdt/sidt store


TRAP_COUNTS = 12288 + 8  # the guest's exception record: u32 count[32] per vector
# result, seconds, page before/after, events, what sgdt/sidt store (from the guest's own record)
Outcome = tuple[RunResult, float, bytes, bytes, list[SppEvent], dict[int, bytes]]


def run(
    cpl: int, ops: list[Op], mask: int, policy: Policy | None = None, setup: Callable[[Machine], None] | None = None
) -> Outcome:
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(TARGET, filler(PAGE))
        if setup is not None:
            setup(m)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        if policy is not None:
            spp.add_policy(policy)
        spp.protect(TARGET, mask)
        before = m.memory.read(TARGET, PAGE)
        driver = StoreDriver(m, cpl, [ops])
        t0 = time.monotonic()
        result = m.run(timeout=20)
        elapsed = time.monotonic() - t0
        after = m.memory.read(TARGET, PAGE)
        if result.status == ExitStatus.OK:
            assert driver.refused() == 0  # every op ran
        stored = {op: m.memory.read(driver.mailbox + at, 10) for op, at in OWN_TABLE_RECORD.items()}
        traps = {v: c for v in range(32) if (c := m.memory.read_u32(driver.mailbox + TRAP_COUNTS + 4 * v))}
        assert traps == {}  # no #DB, #BP, #DF, #GP or anything else reached the guest
        assert spp.backend.stepped == sum(e.backend == "single-step" for e in events)
    return result, elapsed, before, after, events, stored


@pytest.mark.parametrize("cpl", [0, 3])
@pytest.mark.parametrize("op", [SGDT, SIDT], ids=["sgdt", "sidt"])
def test_descriptor_table_store_into_a_protected_page(cpl: int, op: int) -> None:
    result, elapsed, before, after, events, stored = run(cpl, [Op(op, DENIED), Op(op, ALLOWED)], MASK)
    assert result.status == ExitStatus.OK, result.reason
    assert elapsed < QUICK
    data = stored[op]
    assert data != bytes(10)  # the guest has its own GDT and IDT: neither limit nor base is zero
    expected = bytearray(before)
    expected[ALLOWED - TARGET : ALLOWED - TARGET + len(data)] = data
    assert after == bytes(expected)  # the allowed one landed (stepped too), the denied one did not

    assert len(events) == 1
    ev = events[0]
    assert (ev.backend, ev.gpa, ev.data, ev.size) == ("software", DENIED, data, len(data))
    assert ev.page_mask == MASK
    assert ev.mnemonic == ("sgdt" if op == SGDT else "sidt") and ev.insn_length == 3


def allow_the_guests_own_stores(event: SppEvent) -> SppVerdict | None:
    """The guest builds its GDT with plain `mov`s, which reach the engine as "software" events:
    let those through, so only the CPU's accessed-bit write is left to deny."""
    return ALLOW if event.backend == "software" else None


GDT = TARGET + 0x100
CODE64, DATA_NOT_ACCESSED = 0x00AF9B000000FFFF, 0x00CF92000000FFFF
ACCESS_BYTE = GDT + 2 * 8 + 5  # the data descriptor's type byte: 0x92, 0x93 once accessed


def test_accessed_bit_write_into_a_protected_gdt() -> None:
    result, elapsed, before, after, events, _ = run(
        0, [Op(LOAD_SEGMENT_FROM_GDT_AT, GDT)], 0, policy=allow_the_guests_own_stores
    )
    assert result.status == ExitStatus.OK, result.reason
    assert elapsed < QUICK
    table = struct.pack("<QQQ", 0, CODE64, DATA_NOT_ACCESSED)
    expected = bytearray(before)
    expected[GDT - TARGET : GDT - TARGET + 24] = table
    assert after == bytes(expected)
    assert after[ACCESS_BYTE - TARGET] == 0x92  # the accessed bit stayed clear

    assert [(e.backend, e.gpa, e.data) for e in events] == [
        ("software", GDT, struct.pack("<Q", 0)),
        ("software", GDT + 8, struct.pack("<Q", CODE64)),
        ("software", GDT + 16, struct.pack("<Q", DATA_NOT_ACCESSED)),
        ("single-step", ACCESS_BYTE, b"\x93"),
    ]


def test_accessed_bit_write_into_a_gdt_the_host_wrote() -> None:
    """count == 1: the guest only loads from a table the host put there, so the CPU's write is
    the only one and no policy is needed."""

    def host_table(m: Machine) -> None:
        m.memory.write(GDT, struct.pack("<QQQ", 0, CODE64, DATA_NOT_ACCESSED))

    result, elapsed, before, after, events, _ = run(
        0, [Op(LOAD_SEGMENT_FROM_GDT_AT, GDT, count=1)], 0, setup=host_table
    )
    assert result.status == ExitStatus.OK, result.reason
    assert elapsed < QUICK
    assert after == before
    assert after[ACCESS_BYTE - TARGET] == 0x92
    assert [(e.backend, e.gpa, e.data) for e in events] == [("single-step", ACCESS_BYTE, b"\x93")]
