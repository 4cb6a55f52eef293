"""The software SPP engine against a fake host (no KVM): which pages it traps, how a trapped write
is judged on the fast path and as fragments, what each verdict does to RAM, how a stepped
instruction's changes are found and put back.

The host is a stand-in for `vmm.spp.attach.MachineHost`; guest RAM is real (memfd-backed
GuestMemory), the exits are real exit views over a kvm_run page in plain memory (tests.fakes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from kvm_abi import exits as ke
from tests.fakes import SyntheticVcpu, mmio_exit
from vmm.board.bus import AddressSpace
from vmm.board.memory import GuestMemory
from vmm.kvm.exits import Exit
from vmm.spp.controller import Spp
from vmm.spp.event import ALLOW, DENY, Inject, SppEvent, SppVerdict, WriteInstead
from vmm.spp.software import SoftwareSpp, _restore
from vmm.verdict import Stop, Verdict

PAGE = 4096
RAM = 1 << 20
TARGET = 0x40000
FILL = 0x5A
SUB1_DENIED = 0xFFFFFFFD  # sub-page 1 (0x80-0xff) denied


@dataclass
class EngineVcpu(SyntheticVcpu):
    """A synthetic vCPU whose immediate-exit runs return queued exits, then an interrupted run."""

    queued: list[Callable[[EngineVcpu], Exit]] = field(default_factory=list)

    def run_immediate(self) -> Exit:
        if self.queued:
            return self.queued.pop(0)(self)
        return self.view(ke.KVM_EXIT_INTR)


class FakeSlots:
    def __init__(self) -> None:
        self.trapped: frozenset[int] = frozenset()
        self.layouts: list[frozenset[int]] = []

    def relayout(self, trapped: set[int] | frozenset[int]) -> None:
        self.trapped = frozenset(trapped)
        self.layouts.append(self.trapped)


class FakeControl:
    pending: Stop | None = None

    def current_vcpu(self) -> Any:
        return None

    @contextmanager
    def others_paused(self) -> Iterator[None]:
        yield

    def kick(self, vcpus: Sequence[Any] | None = None) -> None:
        pass

    def parked(self, vcpu: Any) -> bool:
        return False


class FakeHost:
    """What the engine may use of its machine, recording what it did."""

    def __init__(self) -> None:
        self.memory = GuestMemory()
        self.memory.add_ram(0, RAM)
        self.slots = FakeSlots()
        self.mmio = AddressSpace("address", 1 << 52, direct_index=False)
        self.control = FakeControl()
        self.vcpus = [EngineVcpu()]
        self.log: Any = None
        self.claims: dict[Any, Callable[[Any], Any]] = {}
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.caps: list[tuple[int, tuple[int, ...]]] = []

    def vcpu(self, index: int) -> EngineVcpu:
        return self.vcpus[index]

    def claim(self, kind: Any, claim: Callable[[Any], Any]) -> None:
        self.claims[kind] = claim

    def exit_handler(self, kind: Any) -> Callable[[Any], Verdict]:
        raise AssertionError("the engine does not look up handlers on these paths")

    def handle(self, ex: Exit) -> Verdict:
        raise AssertionError("the engine does not dispatch exits on these paths")

    def note(self, kind: str, **fields: Any) -> None:
        self.notes.append((kind, fields))

    def enable_cap(self, cap: int, *args: int) -> bool:
        self.caps.append((cap, args))
        return True


@dataclass
class Rig:
    host: FakeHost
    spp: Spp
    engine: SoftwareSpp
    events: list[SppEvent]
    verdicts: list[SppVerdict]

    @property
    def vcpu(self) -> EngineVcpu:
        return self.host.vcpus[0]

    def write(self, gpa: int, data: bytes) -> Verdict:
        """One trapped guest write, as the MMIO bus hands it to the engine."""
        return self.engine.handle_mmio(mmio_exit(self.vcpu, gpa, len(data), write=True, data=data))

    def ram(self, gpa: int, n: int) -> bytes:
        return self.host.memory.read(gpa, n)


@pytest.fixture
def rig() -> Iterator[Rig]:
    host = FakeHost()
    host.memory.fill(0, RAM, FILL)
    events: list[SppEvent] = []
    verdicts: list[SppVerdict] = []

    def policy(event: SppEvent) -> SppVerdict | None:
        events.append(event)
        return verdicts.pop(0) if verdicts else None

    holder: list[SoftwareSpp] = []

    def make_backend(spp: Spp) -> SoftwareSpp:
        holder.append(SoftwareSpp(host, spp))
        return holder[0]

    spp = Spp(host, make_backend)
    spp.add_policy(policy)
    yield Rig(host, spp, holder[0], events, verdicts)
    host.memory.close()


# --- set-up ---------------------------------------------------------------------------------


def test_the_engine_takes_ram_on_the_mmio_bus_and_claims_emulation_failures(rig: Rig) -> None:
    assert rig.host.mmio.lookup(TARGET) is not None  # a write into a read-only slot lands here
    assert any(getattr(k, "__name__", "") == "InternalErrorExit" for k in rig.host.claims)
    assert rig.host.caps  # KVM_CAP_EXIT_ON_EMULATION_FAILURE: exits, not #UD in the guest


def test_a_protected_page_is_trapped_with_guards_beside_denied_edge_subpages(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)  # inner sub-page: no neighbour can reach it in one store
    assert rig.host.slots.layouts[-1] == {TARGET}
    rig.spp.protect(TARGET, 0xFFFFFFFE)  # sub-page 0: a store from the page below could run into it
    assert rig.host.slots.layouts[-1] == {TARGET - PAGE, TARGET}
    rig.spp.protect(TARGET, 0x7FFFFFFF)  # sub-page 31: the page above
    assert rig.host.slots.layouts[-1] == {TARGET, TARGET + PAGE}


def test_guards_stay_inside_ram(rig: Rig) -> None:
    rig.spp.protect(0, 0)  # page 0 denied entirely: there is no page below it
    rig.spp.protect(RAM - PAGE, 0)  # nor above the last one
    assert rig.host.slots.layouts[-1] == {0, PAGE, RAM - 2 * PAGE, RAM - PAGE}


def test_releasing_the_last_page_untraps_everything(rig: Rig) -> None:
    rig.spp.protect(TARGET, 0)
    rig.spp.release(TARGET)
    assert rig.host.slots.layouts[-1] == frozenset()


# --- the fast path: one fragment inside one page ----------------------------------------------


def test_an_allowed_write_lands_without_asking_a_policy(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    assert rig.write(TARGET + 0x10, b"\x01\x02\x03\x04") is None
    assert rig.ram(TARGET + 0x10, 4) == b"\x01\x02\x03\x04"
    assert rig.events == []


def test_a_denied_write_is_judged_and_dropped(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.write(TARGET + 0x90, b"\xaa\xbb")
    assert rig.ram(TARGET + 0x90, 2) == bytes([FILL]) * 2
    [event] = rig.events
    assert (event.gpa, event.page_mask, event.backend) == (TARGET + 0x90, SUB1_DENIED, "software")
    assert (event.write_gpa, event.size, event.data) == (TARGET + 0x90, 2, b"\xaa\xbb")


def test_the_event_names_the_first_denied_byte_of_a_straddling_write(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.write(TARGET + 0x7E, b"\x11\x22\x33\x44")  # two bytes in allowed sub-page 0, two in 1
    assert rig.events[0].gpa == TARGET + 0x80
    assert rig.ram(TARGET + 0x7E, 4) == bytes([FILL]) * 4  # judged whole: the allowed half too


def test_allow_writes_the_whole_access(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.verdicts.append(ALLOW)
    rig.write(TARGET + 0x7E, b"\x11\x22\x33\x44")
    assert rig.ram(TARGET + 0x7E, 4) == b"\x11\x22\x33\x44"
    assert rig.spp.mask(TARGET) == SUB1_DENIED  # allowed once, still protected


def test_write_instead_replaces_the_data(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.verdicts.append(WriteInstead(b"\xee"))
    rig.write(TARGET + 0x90, b"\xaa\xbb")
    assert rig.ram(TARGET + 0x90, 2) == bytes([0xEE, FILL])


def test_inject_raises_the_exception_with_its_error_code(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.verdicts.append(Inject(vector=13))
    rig.write(TARGET + 0x90, b"\xaa")
    ev = rig.vcpu.events.exception
    assert (ev.injected, ev.nr, ev.has_error_code, ev.error_code) == (1, 13, 1, 0)
    assert rig.ram(TARGET + 0x90, 1) == bytes([FILL])


def test_inject_of_a_vector_without_an_error_code_sets_none(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.verdicts.append(Inject(vector=6, error_code=5))  # #UD pushes no error code
    rig.write(TARGET + 0x90, b"\xaa")
    assert (rig.vcpu.events.exception.nr, rig.vcpu.events.exception.has_error_code) == (6, 0)


# --- the run loop's store index: allowed sub-pages a lone vCPU stores into ---------------------


def test_an_allowed_store_inside_one_sub_page_opens_it_to_the_run_loop(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    stores = rig.host.mmio.stores
    rig.write(TARGET + 0x7E, b"\x01\x02\x03\x04")  # denied: sub-page 1
    rig.write(TARGET + 0x10, b"\x05\x06")
    rig.write(TARGET + 0x17E, b"\x07\x08\x09")  # allowed, but across sub-pages 2 and 3: not indexed
    assert list(stores) == [(TARGET + 0x10) >> 7]
    view, start = stores[(TARGET + 0x10) >> 7]
    assert bytes(view[TARGET + 0x10 - start : TARGET + 0x12 - start]) == b"\x05\x06"  # guest RAM itself
    assert rig.ram(TARGET + 0x17E, 3) == b"\x07\x08\x09"


def test_a_mask_change_empties_the_store_index(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.write(TARGET + 0x10, b"\x05")
    rig.spp.protect(TARGET, 0xFFFFFFFE)  # sub-page 0 denied now: the run loop must hand it over again
    assert rig.host.mmio.stores == {}
    rig.write(TARGET + 0x10, b"\x06")
    assert rig.events[0].gpa == TARGET + 0x10 and rig.host.mmio.stores == {}


def test_while_a_snapshot_tracks_writes_the_page_is_recorded_instead(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.write(TARGET + 0x10, b"\x05")
    written: set[int] = set()
    rig.host.memory.track_writes(written)  # what a fast reset's dirty tracker does
    assert rig.host.mmio.stores == {}
    rig.write(TARGET + 0x10, b"\x06")
    assert written == {TARGET} and rig.host.mmio.stores == {}
    rig.host.memory.track_writes(None)
    rig.write(TARGET + 0x10, b"\x07")
    assert list(rig.host.mmio.stores) == [(TARGET + 0x10) >> 7]


def test_a_second_writer_empties_the_store_index_for_good(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.write(TARGET + 0x10, b"\x05")
    rig.host.memory.write(TARGET + 0x20, b"\x99")  # the monitor's own write, from no vCPU's thread
    assert rig.host.mmio.stores == {}
    rig.write(TARGET + 0x10, b"\x06")
    assert rig.host.mmio.stores == {} and rig.ram(TARGET + 0x10, 1) == b"\x06"


# --- no policy and no watcher: denied stores are logged raw, made into events when read ---------


@pytest.fixture
def unasked() -> Iterator[tuple[Spp, SoftwareSpp, EngineVcpu]]:
    host = FakeHost()
    holder: list[SoftwareSpp] = []

    def make_backend(spp: Spp) -> SoftwareSpp:
        holder.append(SoftwareSpp(host, spp))
        return holder[0]

    spp = Spp(host, make_backend)
    yield spp, holder[0], host.vcpus[0]
    host.memory.close()


def store(engine: SoftwareSpp, vcpu: EngineVcpu, gpa: int, data: bytes) -> Verdict:
    return engine.handle_mmio(mmio_exit(vcpu, gpa, len(data), write=True, data=data))


def test_unasked_denials_read_back_as_events_with_every_field(unasked: tuple[Spp, SoftwareSpp, EngineVcpu]) -> None:
    spp, engine, vcpu = unasked
    spp.protect(TARGET, SUB1_DENIED)
    assert store(engine, vcpu, TARGET + 0x7E, b"\x01\x02\x03") is None  # runs into denied sub-page 1
    assert store(engine, vcpu, TARGET + 0x90, b"\x04") is None
    assert engine.memory.read(TARGET + 0x7E, 3) == bytes(3) and engine.memory.read(TARGET + 0x90, 1) == bytes(1)
    first, second = spp.events
    rip = vcpu.synced_rip()
    assert first == SppEvent(TARGET + 0x80, SUB1_DENIED, 0, rip, "software", TARGET + 0x7E, 3, b"\x01\x02\x03")
    assert (second.gpa, second.write_gpa, second.size, second.data) == (TARGET + 0x90, TARGET + 0x90, 1, b"\x04")


def test_the_event_list_is_one_list_that_a_caller_may_clear(unasked: tuple[Spp, SoftwareSpp, EngineVcpu]) -> None:
    spp, engine, vcpu = unasked
    spp.protect(TARGET, SUB1_DENIED)
    log = spp.events
    store(engine, vcpu, TARGET + 0x90, b"\x01")
    assert spp.events is log and len(log) == 1
    log.clear()
    store(engine, vcpu, TARGET + 0x91, b"\x02")
    assert [e.gpa for e in spp.events] == [TARGET + 0x91] and all(isinstance(e, SppEvent) for e in log)


def test_raw_and_judged_events_keep_their_order_and_the_limit(unasked: tuple[Spp, SoftwareSpp, EngineVcpu]) -> None:
    spp, engine, vcpu = unasked
    spp.protect(TARGET, SUB1_DENIED)
    spp.keep_events = 4
    for i in range(3):
        store(engine, vcpu, TARGET + 0x80 + i, b"\x01")  # logged raw
    spp.add_policy(lambda event: None)  # someone to ask now: judged, an SppEvent from the start
    for i in range(3, 6):
        store(engine, vcpu, TARGET + 0x80 + i, b"\x01")
    # at the fifth the four kept were halved: the third to the sixth are left
    assert [e.gpa - TARGET - 0x80 for e in spp.events] == [2, 3, 4, 5]


# --- fragments: an 8-byte write may be followed by more of the same instruction -------------------


def test_fragments_of_one_store_are_judged_as_one_access(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.vcpu.queued.append(lambda v: mmio_exit(v, TARGET + 0x80, 8, write=True, data=b"B" * 8))
    rig.write(TARGET + 0x78, b"A" * 8)  # allowed by itself, but its sibling is denied
    [event] = rig.events
    assert (event.gpa, event.write_gpa, event.size, event.data) == (
        TARGET + 0x80,
        TARGET + 0x78,
        16,
        b"A" * 8 + b"B" * 8,
    )
    assert rig.ram(TARGET + 0x78, 16) == bytes([FILL]) * 16


def test_allowed_fragments_all_land(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.verdicts.append(ALLOW)
    rig.vcpu.queued.append(lambda v: mmio_exit(v, TARGET + 0x80, 8, write=True, data=b"B" * 8))
    rig.write(TARGET + 0x78, b"A" * 8)
    assert rig.ram(TARGET + 0x78, 16) == b"A" * 8 + b"B" * 8


def test_an_eight_byte_write_alone_is_one_fragment(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.write(TARGET + 0x10, b"C" * 8)  # the immediate-exit run finds nothing more
    assert rig.ram(TARGET + 0x10, 8) == b"C" * 8 and rig.events == []


def test_a_write_running_off_the_end_of_ram_drops_the_outside_part(rig: Rig) -> None:
    rig.spp.protect(RAM - PAGE, FULL_BUT_LAST := 0x7FFFFFFF)
    assert FULL_BUT_LAST & 1
    rig.vcpu.queued.append(lambda v: mmio_exit(v, RAM, 8, write=True, data=b"E" * 8))
    rig.write(RAM - 0x100 - 8, b"D" * 8)  # in allowed sub-page 29
    assert rig.ram(RAM - 0x108, 8) == b"D" * 8
    assert [kind for kind, _ in rig.host.notes] == ["unhandled-mmio"]
    assert rig.host.notes[0][1]["address"] == RAM


def test_a_denied_default_leaves_the_mask(rig: Rig) -> None:
    rig.spp.protect(TARGET, SUB1_DENIED)
    rig.verdicts.append(DENY)
    rig.write(TARGET + 0x90, b"\x01")
    assert rig.spp.mask(TARGET) == SUB1_DENIED and len(rig.events) == 1


# --- a stepped instruction: what it changed is found by diffing and put back -------------------


def test_restore_reports_each_changed_run_and_puts_the_page_back(rig: Rig) -> None:
    memory = rig.host.memory
    saved = {(p, p + PAGE): memory.read(p, PAGE) for p in (TARGET, TARGET + PAGE)}
    memory.write(TARGET + 0x10, b"\x01\x02")
    memory.write(TARGET + 0x20, b"\x03")
    memory.write(TARGET + PAGE - 1, b"\x04")
    memory.write(TARGET + PAGE, b"\x05")  # the run goes on across the page boundary: two runs
    changed = _restore(memory, saved)
    assert changed == [
        (TARGET + 0x10, b"\x01\x02"),
        (TARGET + 0x20, b"\x03"),
        (TARGET + PAGE - 1, b"\x04"),
        (TARGET + PAGE, b"\x05"),
    ]
    assert memory.read(TARGET, 2 * PAGE) == bytes([FILL]) * 2 * PAGE


def test_restore_of_an_unchanged_page_reports_nothing(rig: Rig) -> None:
    memory = rig.host.memory
    assert _restore(memory, {(TARGET, TARGET + PAGE): memory.read(TARGET, PAGE)}) == []


def test_a_byte_rewritten_with_its_own_value_is_not_a_change(rig: Rig) -> None:
    memory = rig.host.memory
    saved = {(TARGET, TARGET + PAGE): memory.read(TARGET, PAGE)}
    memory.write(TARGET + 8, bytes([FILL, 0x01, FILL]))
    assert _restore(memory, saved) == [(TARGET + 9, b"\x01")]
