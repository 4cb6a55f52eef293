"""Property: whatever the masks and stores, guest memory after a run equals the naive reference
model (tests/spp_model.py) fed the same stores in the same order, and every store the model
refuses is exactly one event, at CPL 0 and at CPL 3.

Each example protects 2 or 3 neighbouring pages around TARGET with random masks (edge masks
weighted in, since guard pages hinge on sub-pages 0 and 31) and runs 1-30 random stores, aligned
or not, in and around those pages, in one batch on a fresh machine. The stores are of every kind
the engine handles differently: plain stores of 1-8 bytes and 16-byte SSE stores (MMIO exits, in
fragments), `xchg`, `lock cmpxchg` that matches or not (a failed one still makes a write cycle of
the old value), `push`, `rep stosb` (each byte judged on its own), the SSE, x87 and MXCSR stores
KVM cannot emulate (`movq`, `movd`, `movss`, `movsd`, `movhps`, `movlps`, `fstp`, `fistp`,
`stmxcsr`), carried out by the engine from their decoded form, and `cmpxchg16b`.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.spp_driver import (
    CMPXCHG16B,
    FISTP,
    FSTP,
    LOCK_CMPXCHG64,
    MOVD_XMM,
    MOVDQU,
    MOVHPS,
    MOVLPS,
    MOVQ_XMM,
    MOVSD,
    MOVSS,
    PUSH64,
    REP_STOSB,
    STMXCSR,
    STORE8,
    STORE16,
    STORE32,
    STORE64,
    TARGET,
    XCHG64,
    Op,
    StoreDriver,
    stores_machine,
)
from tests.spp_model import SppModel
from vmm.errors import ExitStatus
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
FULL = 0xFFFFFFFF
# bytes written, from value (then value2)
WIDTH = {STORE8: 1, STORE16: 2, STORE32: 4, STORE64: 8, MOVDQU: 16, XCHG64: 8, PUSH64: 8, MOVQ_XMM: 8, MOVD_XMM: 4}
WIDTH |= {MOVSS: 4, MOVSD: 8, MOVHPS: 8, MOVLPS: 8, FISTP: 8, CMPXCHG16B: 16}
KINDS = [*WIDTH, LOCK_CMPXCHG64, REP_STOSB, FSTP, STMXCSR]
MXCSR = 0x1F80  # the guest never changes it
# Stores KVM's instruction emulator lacks: at CPL 0, where every instruction is emulated on this
# host, they end the run with an emulation failure on any page nothing traps (as with no SPP at
# all), so at CPL 0 they are only generated where they reach a trapped page.
UNEMULATED = {MOVQ_XMM, MOVD_XMM, MOVSS, MOVSD, MOVHPS, MOVLPS, FSTP, FISTP, STMXCSR, CMPXCHG16B}
# The x87 ops load their operand with `fild` first, which the emulator lacks too: not at CPL 0.
LOADS_FIRST = {FSTP, FISTP}
LO, HI = TARGET - 2 * PAGE, TARGET + 3 * PAGE  # compared region: the pages plus one either side
EDGE_MASKS = [0, FULL, 0xFFFFFFFE, 0x7FFFFFFF, 0x7FFFFFFE, 0x80000001, 0x55555555]

masks_st = st.lists(st.one_of(st.sampled_from(EDGE_MASKS), st.integers(0, FULL)), min_size=2, max_size=3)
ops_st = st.lists(
    st.builds(
        Op,
        op=st.sampled_from(KINDS),
        # in and around the protected pages: from just below the first to just past the last
        addr=st.one_of(
            st.integers(TARGET - PAGE - 24, TARGET + 2 * PAGE + 24),
            st.builds(lambda p, d: TARGET + p * PAGE + d, st.integers(-1, 2), st.integers(-16, 16)),  # page edges
            st.builds(lambda s, d: TARGET + s * 128 + d, st.integers(0, 31), st.integers(-16, 16)),  # sub-page edges
        ),
        value=st.integers(0, 2**64 - 1),
        value2=st.integers(0, 2**64 - 1),
        count=st.integers(0, 24),  # rep stosb's length; lock cmpxchg: odd = expect what memory holds
    ),
    min_size=1,
    max_size=30,
)


def trapped(pages: dict[int, int]) -> set[int]:
    """The pages the engine traps: the protected ones (a FULL mask protects nothing), and beside a
    denied first or last sub-page the neighbour (a guard)."""
    out: set[int] = set()
    for page, mask in pages.items():
        if mask == FULL:
            continue
        out.add(page)
        if not mask & 1:
            out.add(page - PAGE)
        if not mask >> 31:
            out.add(page + PAGE)
    return out


def prepared(ops: list[Op], cpl: int, pages: dict[int, int]) -> list[Op]:
    """The ops as the guest gets them: cmpxchg16b needs a 16-byte aligned operand; at CPL 0 an
    unemulated store stays on trapped pages (see UNEMULATED)."""
    out = []
    traps = trapped(pages)
    for o in ops:
        if o.op == CMPXCHG16B:
            o = Op(o.op, o.addr & ~15, o.value, o.value2, o.count)
        size = 16 if o.op == CMPXCHG16B else WIDTH.get(o.op, 8)
        if cpl == 0 and o.op in LOADS_FIRST:
            continue
        if cpl == 0 and o.op in UNEMULATED and not {a & ~(PAGE - 1) for a in (o.addr, o.addr + size - 1)} & traps:
            continue
        out.append(o)
    return out


def writes_of(op: Op, model: SppModel) -> list[tuple[int, bytes]]:
    """The accesses the op makes, each judged whole, in order; lock cmpxchg reads the model's
    memory (and an odd count makes its expected value match it, set here before the run)."""
    q = op.value.to_bytes(8, "little")
    if op.op == REP_STOSB:
        return [(op.addr + i, q[:1]) for i in range(op.count)]
    if op.op == FSTP:
        signed = op.value - (1 << 64) if op.value >> 63 else op.value
        return [(op.addr, struct.pack("<d", float(signed)))]  # x87 rounds to nearest, as Python does
    if op.op == STMXCSR:
        return [(op.addr, MXCSR.to_bytes(4, "little"))]
    if op.op == LOCK_CMPXCHG64:
        old = model.read(op.addr, 8)
        if op.count & 1:
            op.value2 = int.from_bytes(old, "little")
        return [(op.addr, q if int.from_bytes(old, "little") == op.value2 else old)]
    return [(op.addr, (q + op.value2.to_bytes(8, "little"))[: WIDTH[op.op]])]


@pytest.mark.parametrize("cpl", [0, 3])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # explaining costs minutes of runs
)
@given(masks=masks_st, ops=ops_st)
def test_memory_matches_the_reference_model(cpl: int, masks: list[int], ops: list[Op]) -> None:
    pages = {TARGET + i * PAGE: mask for i, mask in enumerate(masks)}
    ops = prepared(ops, cpl, pages)
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(LO, bytes((i * 31 + 17) % 256 for i in range(HI - LO)))
        model = SppModel(LO, m.memory.read(LO, HI - LO))
        model.masks.update(pages)
        refused_writes = []
        for op in ops:  # the model first: it also fixes each matching cmpxchg's expected value
            for addr, data in writes_of(op, model):
                if not model.write(addr, data):
                    first = next(a for a in range(addr, addr + len(data)) if not model.writable(a))
                    refused_writes.append((first, addr, data))
        spp = m.enable_spp()
        spp.add_policy(events.append)
        for page, mask in pages.items():
            spp.protect(page, mask)
        driver = StoreDriver(m, cpl, [ops])
        result = m.run(timeout=30)
        after = m.memory.read(LO, HI - LO)
        refused = driver.refused()

    assert result.status == ExitStatus.OK, result.reason
    assert refused == 0
    assert after == bytes(model.mem)
    assert [(e.gpa, e.write_gpa, e.data) for e in events] == refused_writes
