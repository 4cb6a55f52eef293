"""Property: whatever the masks and stores, guest memory after a run equals the naive reference
model (tests/spp_model.py) fed the same stores in the same order, and every store the model
refuses is exactly one event.

Each example protects 2 or 3 neighbouring pages around TARGET with random masks (edge masks
weighted in, since guard pages hinge on sub-pages 0 and 31) and runs 1-40 random stores of
1-16 bytes, aligned or not, in and around those pages, in one batch at CPL 3 on a fresh machine.

25 examples by default; PYVMM_FUZZ_EXAMPLES=N or HYPOTHESIS_PROFILE=fuzz (tests/fuzz/budget.py)
run more with no change here.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.budget import examples
from tests.spp_driver import MOVDQU, STORE8, STORE16, STORE32, STORE64, TARGET, Op, StoreDriver, stores_machine
from tests.spp_model import SppModel
from vmm.errors import ExitStatus
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
FULL = 0xFFFFFFFF
WIDTH = {STORE8: 1, STORE16: 2, STORE32: 4, STORE64: 8, MOVDQU: 16}
LO, HI = TARGET - 2 * PAGE, TARGET + 3 * PAGE  # compared region: the pages plus one either side
EDGE_MASKS = [0, FULL, 0xFFFFFFFE, 0x7FFFFFFF, 0x7FFFFFFE, 0x80000001, 0x55555555]

masks_st = st.lists(st.one_of(st.sampled_from(EDGE_MASKS), st.integers(0, FULL)), min_size=2, max_size=3)
ops_st = st.lists(
    st.builds(
        Op,
        op=st.sampled_from(list(WIDTH)),
        # in and around the protected pages: from just below the first to just past the last
        addr=st.one_of(
            st.integers(TARGET - PAGE - 24, TARGET + 2 * PAGE + 24),
            st.builds(lambda p, d: TARGET + p * PAGE + d, st.integers(-1, 2), st.integers(-16, 16)),  # page edges
            st.builds(lambda s, d: TARGET + s * 128 + d, st.integers(0, 31), st.integers(-16, 16)),  # sub-page edges
        ),
        value=st.integers(0, 2**64 - 1),
        value2=st.integers(0, 2**64 - 1),
    ),
    min_size=1,
    max_size=40,
)


def data_of(op: Op) -> bytes:
    return (op.value.to_bytes(8, "little") + op.value2.to_bytes(8, "little"))[: WIDTH[op.op]]


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks=masks_st, ops=ops_st)
def test_memory_matches_the_reference_model(masks: list[int], ops: list[Op]) -> None:
    pages = {TARGET + i * PAGE: mask for i, mask in enumerate(masks)}
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(LO, bytes((i * 31 + 17) % 256 for i in range(HI - LO)))
        spp = m.enable_spp()
        spp.add_policy(events.append)
        for page, mask in pages.items():
            spp.protect(page, mask)
        model = SppModel(LO, m.memory.read(LO, HI - LO))
        model.masks.update(pages)
        driver = StoreDriver(m, 3, [ops])
        result = m.run(timeout=20)
        after = m.memory.read(LO, HI - LO)
        refused = driver.refused()

    assert result.status == ExitStatus.OK, result.reason
    assert refused == 0
    refused_writes = []
    for op in ops:
        data = data_of(op)
        if not model.write(op.addr, data):
            first = next(a for a in range(op.addr, op.addr + len(data)) if not model.writable(a))
            refused_writes.append((first, op.addr, data))
    assert after == bytes(model.mem)
    assert [(e.gpa, e.write_gpa, e.data) for e in events] == refused_writes
