"""Where an injected exception is taken under the software engine, at CPL 0 and CPL 3: `Inject(13)` and
`Inject(13, rip="after")` after the store (trap-like), `Inject(13, rip="instruction")` on it
(fault-like), for a plain 8-byte store KVM emulates (RIP put back by the store's decoded length)
and for a movq the engine carries out from its decoded form (its register effects not applied).
The guest's own #GP handler records the RIP it was raised at (its exception record) and ends the
run with 245; the SPP event gives the store's RIP as the engine saw it."""

from __future__ import annotations

import pytest

from tests.spp_driver import MOVQ_XMM, STORE64, TARGET, Op, StoreDriver, stores_machine
from vmm.spp.event import Inject, InjectRip, SppEvent

pytestmark = pytest.mark.kvm

MASK = 0xFFFFFFFD  # sub-page 1 denied
DENIED = TARGET + 0x90
TRAPS_OFFSET = 12288  # the guest's exception record in its mailbox
LAST_RIP = 144  # struct trap_state.last_rip
GP = 13
FAULT_STATUS = 245  # the guest's handler saw an exception nobody expected


def run(op: int, rip: InjectRip | None, cpl: int) -> tuple[int, int, SppEvent, int]:
    """(status, RIP the guest's #GP handler saw, the event, #GP count)."""
    events: list[SppEvent] = []
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.add_policy(lambda event: events.append(event) or Inject(GP, 0, rip))
        spp.protect(TARGET, MASK)
        driver = StoreDriver(m, cpl, [[Op(op, DENIED, 0x1122334455667788)]])
        result = m.run(timeout=20)
        traps = driver.mailbox + TRAPS_OFFSET
        seen_rip = m.memory.read_u64(traps + LAST_RIP)
        gp_count = int.from_bytes(m.memory.read(traps + 8 + 4 * GP, 4), "little")
        assert m.memory.read(DENIED, 8) != (0x1122334455667788).to_bytes(8, "little")
    [event] = events
    return result.status, seen_rip, event, gp_count


@pytest.mark.parametrize("cpl", [0, 3])
@pytest.mark.parametrize("rip", [None, "after"])
def test_plain_store_trap_like(rip: InjectRip | None, cpl: int) -> None:
    status, seen, event, count = run(STORE64, rip, cpl)
    assert (status, count) == (FAULT_STATUS, 1)
    assert event.rip is not None and seen == event.rip  # KVM had retired it: RIP after the store


@pytest.mark.parametrize("cpl", [0, 3])
def test_plain_store_fault_like(cpl: int) -> None:
    status, seen, event, count = run(STORE64, "instruction", cpl)
    _, after, _, _ = run(STORE64, "after", cpl)
    assert (status, count) == (FAULT_STATUS, 1)
    assert event.rip == after and 2 <= after - seen <= 15  # back by the store's length, on its first byte


@pytest.mark.parametrize("cpl", [0, 3])
def test_decoded_store_fault_like_and_trap_like(cpl: int) -> None:
    status, on, event, count = run(MOVQ_XMM, "instruction", cpl)
    assert (status, count) == (FAULT_STATUS, 1)
    assert event.rip == on and event.insn_length is not None  # decoded events carry the start
    _, after, _, _ = run(MOVQ_XMM, None, cpl)
    assert after == on + event.insn_length
