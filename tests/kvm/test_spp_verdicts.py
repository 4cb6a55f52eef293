"""What each policy verdict does with a denied store, and how policies chain.

The guest runs at CPL 3 and stores 8 bytes into a denied sub-page; a recording policy comes first
(it returns None, so it only watches) and the policy under test second.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.spp_driver import FISTP, MOVQ_XMM, STORE64, TARGET, Op, StoreDriver, stores_machine
from vmm.errors import ExitStatus
from vmm.machine import RunResult
from vmm.spp.controller import Policy
from vmm.spp.event import (
    ALLOW,
    DENY,
    Allow,
    AllowAndUnprotect,
    Deny,
    Inject,
    SppEvent,
    SppVerdict,
    StopVm,
    WriteInstead,
)
from vmm.spp.masks import FULL

pytestmark = pytest.mark.kvm

PAGE = 4096
MASK = 0xFFFFFFF9  # sub-pages 1 and 2 (0x080-0x17f) denied
A, B = TARGET + 0x90, TARGET + 0xC8  # two slots in denied sub-page 1
V1, V2 = 0x1111111111111111, 0x2222222222222222
FILL = 0x5A
TRAPS_OFFSET, TRAP_RECORD_SIZE = 12288, 256  # the exception record in the guest's mailbox


@dataclass
class Outcome:
    result: RunResult
    page: bytes
    events: list[SppEvent]
    mask: int
    masks: dict[int, int]
    traps: bytes  # the guest's own exception record

    def exception_count(self, vector: int) -> int:
        return int.from_bytes(self.traps[8 + 4 * vector : 12 + 4 * vector], "little")

    def at(self, addr: int, n: int = 8) -> bytes:
        return self.page[addr - TARGET : addr - TARGET + n]


def run(policies: list[Policy], ops: list[Op]) -> Outcome:
    events: list[SppEvent] = []
    with stores_machine() as m:
        m.memory.write(TARGET, bytes([FILL]) * PAGE)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        for p in policies:
            spp.add_policy(p)
        spp.protect(TARGET, MASK)
        driver = StoreDriver(m, 3, [ops])
        result = m.run(timeout=20)
        traps = m.memory.read(driver.mailbox + TRAPS_OFFSET, TRAP_RECORD_SIZE)
        return Outcome(result, m.memory.read(TARGET, PAGE), events, spp.mask(TARGET), spp.masks(), traps)


def always(verdict: SppVerdict) -> Policy:
    return lambda event: verdict


def q(v: int) -> bytes:
    return v.to_bytes(8, "little")


UNTOUCHED = bytes([FILL]) * 8
TWO_STORES = [Op(STORE64, A, V1), Op(STORE64, B, V2)]


def test_deny() -> None:
    out = run([always(DENY)], TWO_STORES)
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert out.page == bytes([FILL]) * PAGE
    assert [(e.gpa, e.data) for e in out.events] == [(A, q(V1)), (B, q(V2))]
    assert out.mask == MASK


def test_no_policy_verdict_means_deny() -> None:
    out = run([], TWO_STORES)  # only the recorder, which returns None
    assert out.page == bytes([FILL]) * PAGE
    assert len(out.events) == 2


def test_allow_lets_one_write_through_and_keeps_the_protection() -> None:
    out = run([always(ALLOW)], TWO_STORES)
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert (out.at(A), out.at(B)) == (q(V1), q(V2))
    assert [e.gpa for e in out.events] == [A, B]  # the second store was judged again
    assert out.mask == MASK


def test_allow_and_unprotect_subpage() -> None:
    # the first store straddles denied sub-pages 1 and 2: both become writable, nothing else
    straddle = TARGET + 0x100 - 4
    ops = [Op(STORE64, straddle, V1), Op(STORE64, A, V2), Op(STORE64, TARGET + 0x110, V2)]
    out = run([always(AllowAndUnprotect("subpage"))], ops)
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert out.at(straddle) == q(V1)
    assert out.at(A) == q(V2) and out.at(TARGET + 0x110) == q(V2)
    assert [e.gpa for e in out.events] == [straddle]  # later stores found the sub-pages open
    assert out.mask == FULL  # 1 and 2 were the only denied sub-pages
    assert out.masks == {}


def test_allow_and_unprotect_subpage_leaves_the_other_subpages() -> None:
    ops = [Op(STORE64, A, V1), Op(STORE64, B, V2), Op(STORE64, TARGET + 0x110, V2)]
    out = run([always(AllowAndUnprotect("subpage"))], ops)
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert (out.at(A), out.at(B), out.at(TARGET + 0x110)) == (q(V1), q(V2), q(V2))
    assert [e.gpa for e in out.events] == [A, TARGET + 0x110]  # B was in the now open sub-page 1
    assert out.mask == FULL


def test_allow_and_unprotect_page() -> None:
    ops = [Op(STORE64, A, V1), Op(STORE64, TARGET + 0x110, V2)]
    out = run([always(AllowAndUnprotect("page"))], ops)
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert (out.at(A), out.at(TARGET + 0x110)) == (q(V1), q(V2))
    assert [e.gpa for e in out.events] == [A]
    assert out.mask == 0xFFFFFFFF
    assert out.masks == {}


@pytest.mark.parametrize("replacement", [b"\xaa" * 8, b"\xbb\xcc"], ids=["same-size", "shorter"])
def test_write_instead(replacement: bytes) -> None:
    out = run([always(WriteInstead(replacement))], [Op(STORE64, A, V1)])
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert out.at(A) == replacement + UNTOUCHED[len(replacement) :]
    assert out.page.count(bytes([FILL])) == PAGE - len(replacement)  # nothing else written
    assert out.mask == MASK


def test_stop_vm() -> None:
    out = run([always(StopVm("tamper detected"))], TWO_STORES)
    assert out.result.status == ExitStatus.SPP_STOP
    assert out.result.reason.startswith("tamper detected: ")
    assert out.events[0].describe() in out.result.reason
    assert f"{A:#x}" in out.result.reason
    assert out.page == bytes([FILL]) * PAGE  # the denied write did not land, the next never ran
    assert len(out.events) == 1


def test_inject_gp_reaches_the_guests_own_handler() -> None:
    """The guest's #GP handler counts the injected fault, reports it and ends the run (245)."""
    out = run([always(Inject(vector=13))], TWO_STORES)
    assert out.result.status == 245, out.result.reason
    assert out.exception_count(13) == 1
    assert sum(out.exception_count(v) for v in range(32)) == 1  # nothing else reached the guest
    assert out.page == bytes([FILL]) * PAGE
    assert len(out.events) == 1


def exploding_policy(event: SppEvent) -> SppVerdict | None:
    raise RuntimeError(f"policy bug at {event.gpa:#x}")


def test_a_policy_that_raises_stops_the_run_with_its_traceback() -> None:
    out = run([exploding_policy], TWO_STORES)
    assert out.result.status == ExitStatus.HANDLER_ERROR
    assert "exploding_policy" in out.result.reason
    assert "Traceback" in out.result.report
    assert "in exploding_policy" in out.result.report
    assert f"RuntimeError: policy bug at {A:#x}" in out.result.report
    assert out.page == bytes([FILL]) * PAGE


def test_policies_chain_until_one_decides() -> None:
    seen: list[str] = []

    def undecided(event: SppEvent) -> SppVerdict | None:
        seen.append("undecided")
        return None

    def decider(event: SppEvent) -> SppVerdict | None:
        seen.append("decider")
        return ALLOW if event.gpa == A else None

    def never(event: SppEvent) -> SppVerdict | None:
        seen.append("never")  # reached only for events the decider left open
        return DENY

    out = run([undecided, decider, never], TWO_STORES)
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert (out.at(A), out.at(B)) == (q(V1), UNTOUCHED)
    assert seen == ["undecided", "decider", "undecided", "decider", "never"]
    assert len(out.events) == 2


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [(Deny(), UNTOUCHED), (Allow(), q(V1)), (AllowAndUnprotect(), q(V1)), (WriteInstead(b"\xee" * 8), b"\xee" * 8)],
    ids=["deny", "allow", "allow-and-unprotect", "write-instead"],
)
@pytest.mark.parametrize(("op", "backend"), [(MOVQ_XMM, "software"), (FISTP, "software")], ids=["movq", "fistp"])
def test_verdicts_on_stores_kvm_cannot_emulate(verdict: SppVerdict, expected: bytes, op: int, backend: str) -> None:
    """The same verdicts for stores KVM cannot emulate, carried out by the engine from their
    decoded form: movq from xmm0, and fistp (an x87 store that pops the stack)."""
    out = run([always(verdict)], [Op(op, A, V1)])
    assert out.result.status == ExitStatus.OK, out.result.reason
    assert out.at(A) == expected
    assert [(e.backend, e.gpa, e.data) for e in out.events] == [(backend, A, q(V1))]
    assert out.mask == (MASK | 0b10 if isinstance(verdict, AllowAndUnprotect) else MASK)
