"""Protection changing while the guest keeps writing: protect, release and re-protect between
batches (from the vCPU thread, in the SYNC handler) and in the middle of a running loop (from
another Python thread, which `Spp.protect` serves by kicking the vCPU out of KVM_RUN and waiting
until the new memslots are in place).

Two properties are checked, each so that a wrong engine fails it: no write lost (a store made
while its sub-page is allowed is visible in memory) and none applied where denied (a store made
while its sub-page is denied never reaches memory and is an event).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.spp_driver import MOVQ_XMM, STORE8, STORE8_LOOP, STORE64, TARGET, Op, StoreDriver, stores_machine
from tests.spp_model import SppModel
from vmm.errors import ExitStatus
from vmm.machine import Machine
from vmm.spp.event import SppEvent
from vmm.spp.software import SoftwareSpp

pytestmark = pytest.mark.kvm

PAGE = 4096
FULL = 0xFFFFFFFF
P = TARGET
LOOP_AT = P + 5 * 128 + 3  # the STORE8_LOOP target, in sub-page 5


def slot(subpage: int, batch: int) -> int:
    """A fresh 8-byte slot per sub-page and batch, so every store's fate stays visible."""
    return P + subpage * 128 + 8 * (batch % 16)


def value(subpage: int, batch: int) -> int:
    return 0x0101010101010101 * ((batch * 32 + subpage) % 254 + 1)


# The mask in force during each batch; FULL is a release.
SCHEDULE = [0x0000FFFF, FULL, 0xFFFF0000, 0, FULL, 0xAAAAAAAA, 0x55555555, 0, 0xFFFFFFDF, FULL]


def batch_ops(batch: int) -> list[Op]:
    stores = [Op(STORE64, slot(s, batch), value(s, batch)) for s in range(32) if s != 5]
    return [*stores, Op(STORE8_LOOP, LOOP_AT, batch + 1, 0, 500)]


def test_changes_between_batches_from_the_vcpu_thread() -> None:
    events: list[SppEvent] = []
    problems: list[str] = []
    batches = [batch_ops(b) for b in range(len(SCHEDULE))]
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.add_policy(events.append)
        model = SppModel(P - PAGE, m.memory.read(P - PAGE, 3 * PAGE))
        expected_events: list[tuple[int, bytes]] = []

        def apply_batch_to_model(b: int) -> None:
            model.masks[P] = SCHEDULE[b]
            for op in batches[b]:
                if op.op == STORE8_LOOP:
                    for _ in range(op.count):
                        if not model.write(op.addr, bytes([op.value])):
                            expected_events.append((op.addr, bytes([op.value])))
                elif not model.write(op.addr, op.value.to_bytes(8, "little")):
                    expected_events.append((op.addr, op.value.to_bytes(8, "little")))

        def between(b: int) -> None:
            """Before batch b, on the vCPU thread: check what batch b-1 did, then change the mask."""
            if b > 0:
                apply_batch_to_model(b - 1)
                if m.memory.read(P - PAGE, 3 * PAGE) != bytes(model.mem):
                    problems.append(f"memory after batch {b - 1} differs from the model")
                if [(e.gpa, e.data) for e in events] != expected_events:
                    problems.append(f"events after batch {b - 1} differ from the model")
            if b < len(SCHEDULE):
                if SCHEDULE[b] == FULL:
                    spp.release(P)
                else:
                    spp.protect(P, SCHEDULE[b])
                if spp.mask(P) != SCHEDULE[b]:
                    problems.append(f"mask before batch {b} is {spp.mask(P):#x}")

        driver = StoreDriver(m, 3, batches, between=between)
        result = m.run(timeout=20)
        assert driver.done == len(SCHEDULE)

    assert result.status == ExitStatus.OK, result.reason
    assert problems == []
    # each kind of change happened, and both outcomes occurred
    assert expected_events and len(expected_events) < sum(len(b) for b in batches) * 10


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.0002)


ORIG, V = 0x11, 0x77
DENY_LOOP = FULL & ~(1 << 5)  # only the loop's sub-page denied
ALLOW_LOOP = FULL & ~(1 << 9)  # the loop's sub-page allowed, the page still trapped


def test_changes_from_another_thread_during_a_running_loop() -> None:
    """One long CPL-3 STORE8_LOOP of V into LOOP_AT; a second thread cycles the loop's sub-page
    through denied, allowed-but-trapped (each store judged by the engine) and released (stores
    run natively), checking after each `protect`/`release` has returned:
    - denied: memory keeps the value the host put there although hundreds more stores arrive,
      each one an event;
    - allowed (trapped or not): the value the host reset is overwritten by the loop again."""
    events: list[SppEvent] = []
    failures: list[BaseException] = []
    log: list[str] = []
    with stores_machine() as m:
        m.memory.write_u64(LOOP_AT & ~7, 0)
        m.memory.write(LOOP_AT, bytes([ORIG]))
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(P, DENY_LOOP)  # the loop starts out denied

        def loop_byte() -> int:
            return int(m.memory.read(LOOP_AT, 1)[0])

        def denied_phase() -> None:
            m.memory.write(LOOP_AT, bytes([ORIG]))  # wipes any store made before protect() returned
            n0 = len(events)
            wait_for(lambda: len(events) >= n0 + 300, "events from the denied loop")
            assert loop_byte() == ORIG, "a store landed in a denied sub-page"
            assert all(e.gpa == LOOP_AT and e.data == bytes([V]) for e in events[n0:])
            log.append("denied")

        def allowed_phase(trapped: bool) -> None:
            m.memory.write(LOOP_AT, bytes([ORIG]))
            n0 = len(events)
            wait_for(lambda: loop_byte() == V, "an allowed store to land")
            assert len(events) == n0, "an allowed store was reported as a violation"
            backend = spp.backend
            assert isinstance(backend, SoftwareSpp)
            assert (P in backend.trapped) == trapped
            log.append("allowed-trapped" if trapped else "released")

        def choreography() -> None:
            try:
                denied_phase()
                for _ in range(3):
                    spp.protect(P, ALLOW_LOOP)
                    allowed_phase(trapped=True)
                    spp.protect(P, DENY_LOOP)
                    denied_phase()
                    spp.release(P)
                    allowed_phase(trapped=False)
                    spp.protect(P, DENY_LOOP)
                    denied_phase()
            except BaseException as e:  # reported by the main thread
                failures.append(e)
            finally:
                spp.release(P)  # let the loop run out at native speed

        worker = threading.Thread(target=choreography)

        def start_worker(batch: int) -> None:
            if batch == 0:
                worker.start()

        # 2**31 native iterations take about half a second: plenty for the native phases
        StoreDriver(m, 3, [[Op(STORE8_LOOP, LOOP_AT, V, 0, 2**31)]], between=start_worker)
        result = m.run(timeout=30)
        worker.join()
        final = m.memory.read(LOOP_AT, 1)[0]

    if failures:
        raise failures[0]
    assert result.status == ExitStatus.OK, result.reason
    assert log == ["denied"] + ["allowed-trapped", "denied", "released", "denied"] * 3
    assert final == V


def churn_while_running(
    m: Machine, start: Callable[[], bool], rounds: int
) -> tuple[threading.Thread, list[float], list[str]]:
    """From a second thread: protect and release an otherwise unused page `rounds` times, timing
    each call and checking the change is in force when it returns."""
    spp = m.enable_spp()
    backend = spp.backend
    assert isinstance(backend, SoftwareSpp)
    other = P + 8 * PAGE
    took: list[float] = []
    wrong: list[str] = []

    def churn() -> None:
        wait_for(start, "the guest to start its stores")
        for i in range(rounds):
            t0 = time.monotonic()
            spp.protect(other, 0) if i % 2 == 0 else spp.release(other)
            took.append(time.monotonic() - t0)
            if (other in backend.trapped) != (i % 2 == 0):
                wrong.append(f"change {i} not in force when protect/release returned")

    worker = threading.Thread(target=churn)
    worker.start()
    return worker, took, wrong


@pytest.mark.parametrize(
    "op", [STORE64, STORE8, MOVQ_XMM], ids=["store64-fragment-collection", "store8", "movq-single-step"]
)
def test_a_foreign_protect_returns_promptly_while_the_guest_stores_into_a_trapped_page(op: int) -> None:
    """`protect` from another thread must take effect within milliseconds however the guest's
    stores reach the engine: every 8-byte store makes it look for further fragments of the same
    instruction, and movq goes through the single-step fallback; neither may swallow the kick."""
    rounds = 20
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.protect(P, 0xFFFFFFFE)  # sub-page 0 denied, the stores go to allowed sub-page 4
        batch = [Op(op, P + 0x200, 0x1234)] * 128
        started = threading.Event()
        worker, took, wrong = churn_while_running(m, started.is_set, rounds)
        batches = 150 if op != MOVQ_XMM else 5  # most of a second of stores either way

        def between(b: int) -> None:
            if b == 1:
                started.set()

        driver = StoreDriver(m, 3, [batch] * batches, between=between)
        result = m.run(timeout=30)
        worker.join()
        assert driver.done == batches
    assert result.status == ExitStatus.OK, result.reason
    assert wrong == []
    assert len(took) == rounds, "the churn did not finish during the run"
    assert max(took) < 0.25, f"slowest protect/release took {max(took):.3f} s"


def test_protect_from_a_thread_that_began_before_the_run() -> None:
    """A monitoring thread may call `protect` at any time, including while the run is starting.
    The calls must neither fail nor disturb the vCPU thread's own memslot changes (here: the
    single-step fallback, which makes every page writable for one instruction and back)."""
    errors: list[BaseException] = []
    stop = threading.Event()
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.protect(P, 0xFFFFFFFE)

        def churn() -> None:
            i = 0
            try:
                while not stop.is_set():
                    spp.protect(P + 8 * PAGE, 0xFFFF0000 if i % 2 else 0x0000FFFF)
                    i += 1
            except BaseException as e:
                errors.append(e)

        worker = threading.Thread(target=churn)
        worker.start()
        try:
            driver = StoreDriver(m, 3, [[Op(MOVQ_XMM, P + 0x10, 0x99)] * 16] * 4)
            result = m.run(timeout=30)
        finally:
            stop.set()
            worker.join()
        subpage0 = m.memory.read(P, 128)

    assert errors == []
    assert result.status == ExitStatus.OK, result.reason
    assert driver.done == 4
    assert subpage0 == bytes(128)  # every movq into denied sub-page 0 was put back
