"""16-byte `movdqu` stores into a protected page.

KVM's emulator performs the store but hands it to user space as two 8-byte MMIO writes. The
engine collects both before judging, so the access is judged whole: a store entirely in allowed
sub-pages lands, and one straddling an allowed and a denied sub-page changes nothing at all, not
even the half that lies in the allowed sub-page. At CPL 0 (all emulated) and CPL 3 (only the
trapped store emulated) alike.
"""

from __future__ import annotations

import pytest

from tests.spp_driver import MOVDQU, TARGET, Op, StoreDriver, stores_machine
from tests.spp_model import SppModel
from vmm.errors import ExitStatus
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
MASK = 0xFFFFFFFD  # sub-page 1 (0x80-0xff) denied
LO, SIZE = TARGET - PAGE, 3 * PAGE
LOW, HIGH = 0x8877665544332211, 0x00FFEEDDCCBBAA99  # value, value2: the 16 bytes stored


def data16(k: int) -> bytes:
    return (LOW + k).to_bytes(8, "little") + (HIGH + k).to_bytes(8, "little")


CASES = [
    (TARGET + 0x10, "allowed, aligned"),
    (TARGET + 0x23, "allowed, unaligned"),
    (TARGET + 0x70, "allowed, ending on the last byte before the denied sub-page"),
    (TARGET + 0x78, "8 allowed bytes, 8 denied"),
    (TARGET + 0x7C, "4 allowed bytes, 12 denied"),
    (TARGET + 0xF9, "7 denied bytes, 9 allowed"),
    (TARGET + 0x90, "entirely denied"),
    (TARGET + PAGE - 8, "crossing into the next, unprotected page"),
]


@pytest.mark.parametrize("cpl", [0, 3])
def test_movdqu(cpl: int) -> None:
    events: list[SppEvent] = []
    ops = [Op(MOVDQU, addr, LOW + k, HIGH + k) for k, (addr, _) in enumerate(CASES)]
    with stores_machine() as m:
        m.memory.write(LO, bytes((i * 7 + 1) % 255 + 1 for i in range(SIZE)))
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(TARGET, MASK)
        model = SppModel(LO, m.memory.read(LO, SIZE))
        model.masks[TARGET] = MASK
        driver = StoreDriver(m, cpl, [ops])
        result = m.run(timeout=20)
        after = m.memory.read(LO, SIZE)
        assert driver.refused() == 0  # every op ran

    assert result.status == ExitStatus.OK, result.reason
    denied = []
    for k, (addr, what) in enumerate(CASES):
        if not model.write(addr, data16(k)):
            first = next(a for a in range(addr, addr + 16) if not model.writable(a))
            denied.append((first, addr, 16, data16(k), what))
    assert after == bytes(model.mem)
    assert [what for *_, what in denied] == [what for _, what in CASES[3:7]]
    assert [(e.gpa, e.write_gpa, e.size, e.data) for e in events] == [d[:4] for d in denied]
    assert all(e.backend == "software" and e.page_mask == MASK for e in events)
