"""Stores KVM's emulator cannot perform into a read-only memslot (SSE scalar stores, x87 stores,
`cmpxchg16b`, `fxsave`, `stmxcsr`).

KVM fails to emulate them into the read-only slot (at CPL 3 once the native store hits the
trapped page; at CPL 0, where this host emulates all guest code, at once). The engine decodes the
instruction from the bytes KVM hands over, computes exactly what it writes (vmm.x86), judges that
as one access and carries it out itself, moving RIP past it: a "software" event with the decoded
instruction, at CPL 0 and CPL 3 alike, and nothing the guest can see (its exception counts stay
zero). The x87 stores' stack pop is applied to the x87 state through KVM_SET_XSAVE.
"""

from __future__ import annotations

import struct
import time

import pytest

from tests.spp_driver import (
    CMPXCHG16B,
    FISTP,
    FSTP,
    FXSAVE,
    MOVD_XMM,
    MOVDQU,
    MOVHPS,
    MOVLPS,
    MOVQ_XMM,
    MOVSD,
    MOVSS,
    STMXCSR,
    TARGET,
    Op,
    StoreDriver,
    stores_machine,
)
from vmm.errors import ExitStatus
from vmm.machine import RunResult
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
MASK = 0xFFFFFFF0  # sub-pages 0-3 (0x000-0x1ff) denied: room for a whole 512-byte fxsave area
DENIED, ALLOWED = TARGET, TARGET + 0x400
SCRATCH = TARGET + 2 * PAGE  # unprotected
VALUE, VALUE2 = 0x0123456789ABCDEF, 0x1122334455667788
IMAGE_TEXT = range(0x100000, 0x101000)


def q(v: int) -> bytes:
    return v.to_bytes(8, "little")


# op -> the bytes it stores when given VALUE, VALUE2 (guests/README.md, spp-stores op table)
STORED = {
    MOVQ_XMM: q(VALUE),
    MOVD_XMM: q(VALUE)[:4],
    MOVSS: q(VALUE)[:4],
    MOVSD: q(VALUE),
    MOVHPS: q(VALUE),
    MOVLPS: q(VALUE),
    FSTP: struct.pack("<d", float(VALUE)),  # rounded to the nearest double, by fstp and float() alike
    FISTP: q(VALUE),
    CMPXCHG16B: q(VALUE) + q(VALUE2),
    STMXCSR: struct.pack("<I", 0x1F80),  # MXCSR's reset value; the guest never changes it
}
NAMES = {
    MOVQ_XMM: "movq",
    MOVD_XMM: "movd",
    MOVSS: "movss",
    MOVSD: "movsd",
    MOVHPS: "movhps",
    MOVLPS: "movlps",
    FSTP: "fstp",
    FISTP: "fistp",
    CMPXCHG16B: "cmpxchg16b",
    STMXCSR: "stmxcsr",
}
FXSAVE_SIZE = 512
STEPPED: set[int] = set()  # ops that take the single-step fallback: none of these any more


def backend(op: int) -> str:
    return "single-step" if op in STEPPED else "software"


def filler(size: int) -> bytes:
    """Non-zero and unlike any stored value, so every stored byte changes memory (the single-step
    path sees a write only through the bytes it changed)."""
    return bytes((i * 11 + 3) % 13 + 0xF0 for i in range(size))


TRAP_COUNTS = 12288 + 8  # the guest's exception record: u32 count[32] per vector


def run(cpl: int, ops: list[Op]) -> tuple[RunResult, bytes, bytes, list[SppEvent], int]:
    """Memory of the protected page before and after, the events, and RIP at the end. Asserts
    that the guest took no exception, unless an x87 op (single-stepped) is among the ops."""
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(TARGET, filler(PAGE))
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(TARGET, MASK)
        before = m.memory.read(TARGET, PAGE)
        driver = StoreDriver(m, cpl, [ops])
        result = m.run(timeout=20)
        after = m.memory.read(TARGET, PAGE)
        rip = m.vcpu.get_regs().rip
        traps = {v: c for v in range(32) if (c := m.memory.read_u32(driver.mailbox + TRAP_COUNTS + 4 * v))}
        if result.status == ExitStatus.OK:
            assert driver.refused() == 0  # every op ran
            if not any(op.op in STEPPED for op in ops):
                assert traps == {}  # no #DB, #BP, #DF, #GP or anything else reached the guest
    return result, before, after, events, rip


@pytest.mark.parametrize("op", list(STORED), ids=NAMES.get)
def test_cpl3_denies_and_allows(op: int) -> None:
    result, before, after, events, _ = run(3, [Op(op, DENIED + 0x40, VALUE, VALUE2), Op(op, ALLOWED, VALUE, VALUE2)])
    data = STORED[op]
    assert result.status == ExitStatus.OK, result.reason
    expected = bytearray(before)
    expected[ALLOWED - TARGET : ALLOWED - TARGET + len(data)] = data
    assert after == bytes(expected)  # the allowed store landed whole, the denied one not at all

    assert len(events) == 1
    ev = events[0]
    assert ev.backend == backend(op)
    assert ev.gpa == DENIED + 0x40  # the first byte it changed; every byte differs from the filler
    assert ev.data == data and ev.size == len(data)  # the bytes the instruction actually wrote
    assert ev.page_mask == MASK
    assert ev.rip in IMAGE_TEXT
    # the instruction KVM failed on, decoded from the bytes it handed over
    assert ev.mnemonic == NAMES[op] and ev.insn_bytes is not None and ev.insn_length == len(ev.insn_bytes)


def test_cpl3_fxsave() -> None:
    # a movdqu to unprotected memory first puts a known value into xmm0, which fxsave saves
    result, before, after, events, _ = run(
        3, [Op(MOVDQU, SCRATCH, VALUE, VALUE2), Op(FXSAVE, DENIED, 0), Op(FXSAVE, ALLOWED, 0)]
    )
    assert result.status == ExitStatus.OK, result.reason
    check_fxsave(before, after, events)


def check_fxsave(before: bytes, after: bytes, events: list[SppEvent]) -> None:
    area = after[ALLOWED - TARGET : ALLOWED - TARGET + FXSAVE_SIZE]
    assert area[0:2] == struct.pack("<H", 0x037F)  # FCW after reset
    assert area[24:28] == struct.pack("<I", 0x1F80)  # MXCSR
    assert area[160:176] == q(VALUE) + q(VALUE2)  # xmm0
    # nothing else changed: the denied area is as before, the rest of the page too
    lo, hi = ALLOWED - TARGET, ALLOWED - TARGET + FXSAVE_SIZE
    outside = bytearray(after)
    outside[lo:hi] = before[lo:hi]
    assert bytes(outside) == before
    assert len(events) == 1
    assert events[0].backend == "software" and events[0].mnemonic == "fxsave"
    assert DENIED <= events[0].gpa < DENIED + FXSAVE_SIZE


# At CPL 0 the x87 ops fail earlier, at the `fild` that loads their operand from the mailbox: an
# instruction the emulator lacks that touches no trapped page, so not SPP's (status 10).
LOADS_FIRST = {FSTP, FISTP}


@pytest.mark.parametrize("op", [op for op in STORED if op not in LOADS_FIRST], ids=NAMES.get)
def test_cpl0_denies_and_allows(op: int) -> None:
    """KVM can neither emulate nor step these at CPL 0 here: the engine carries them out."""
    result, before, after, events, _ = run(0, [Op(op, DENIED + 0x40, VALUE, VALUE2), Op(op, ALLOWED, VALUE, VALUE2)])
    data = STORED[op]
    assert result.status == ExitStatus.OK, result.reason
    expected = bytearray(before)
    expected[ALLOWED - TARGET : ALLOWED - TARGET + len(data)] = data
    assert after == bytes(expected)
    assert [(e.backend, e.gpa, e.data, e.mnemonic) for e in events] == [("software", DENIED + 0x40, data, NAMES[op])]


@pytest.mark.parametrize("op", sorted(LOADS_FIRST), ids=NAMES.get)
def test_cpl0_failure_before_the_store_is_a_plain_emulation_failure(op: int) -> None:
    """The same report as with nothing protected: decoded, the failed `fild` reads the mailbox."""
    result, before, after, events, rip = run(0, [Op(op, DENIED + 0x40, VALUE, VALUE2)])
    assert result.status == ExitStatus.INTERNAL_ERROR, result.reason
    assert "EMULATION (instruction bytes df 2a" in result.reason  # fild qword [rdx]
    assert rip in IMAGE_TEXT
    assert after == before
    assert events == []


def test_cpl0_fxsave() -> None:
    result, before, after, events, _ = run(
        0, [Op(MOVDQU, SCRATCH, VALUE, VALUE2), Op(FXSAVE, DENIED, 0), Op(FXSAVE, ALLOWED, 0)]
    )
    assert result.status == ExitStatus.OK, result.reason
    check_fxsave(before, after, events)


@pytest.mark.parametrize("op", [MOVQ_XMM, FISTP], ids=["movq", "fistp"])
def test_cpl3_store_straddling_denied_and_allowed_is_judged_whole(op: int) -> None:
    """Like every other store, an unemulable one touching a denied and an allowed sub-page is one
    access (the reference model's rule): denied as a whole, its allowed half must not land either."""
    start = TARGET + 0x200 - 4  # 4 bytes at the end of denied sub-page 3, 4 in allowed sub-page 4
    result, before, after, events, _ = run(3, [Op(op, start, VALUE, VALUE2)])
    assert result.status == ExitStatus.OK, result.reason
    assert after == before
    assert len(events) == 1
    assert events[0].backend == backend(op)
    assert events[0].gpa == start  # the first denied byte


def test_timeout_stops_a_guest_storing_through_the_emulated_path() -> None:
    """The run's timeout (like Ctrl-C or a protection change from another thread) reaches the vCPU
    by setting immediate_exit; single-stepping an instruction must not swallow that request."""
    events: list[SppEvent] = []
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(TARGET, MASK)
        # some 2,500 denied movq stores: several seconds of single-steps if nothing stops them
        StoreDriver(m, 3, [[Op(MOVQ_XMM, DENIED + 0x40, VALUE)] * 128] * 20)
        t0 = time.monotonic()
        result = m.run(timeout=0.3)
        elapsed = time.monotonic() - t0
        page = m.memory.read(TARGET, PAGE)
    assert result.status == ExitStatus.TIMEOUT, result.reason
    assert elapsed < 1.5
    assert page == bytes(PAGE)  # whatever ran before the timeout was denied
    assert events and all(e.backend == "software" for e in events)
