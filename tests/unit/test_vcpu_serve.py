"""The vCPU's serving loop (`vmm.kvm.exits.make_serve`, which `Vcpu.serve` and the runner's run loop
use): each exit goes to the router of its kind or to `handle`, decoded as `run()` decodes it, and
the loop ends at the first answer that is not None. Driven by a stand-in KVM_RUN over a kvm_run
page in plain memory, which plays a script of exits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvm_abi import exits as ke
from kvm_abi import ffi
from tests.fakes import PIO_DATA, SyntheticVcpu
from vmm.kvm.exits import Exit, HltExit, IntrExit, IoExit, MmioExit, make_serve, make_view

Step = Callable[[Any], int]  # fills the page for one exit; returns KVM_RUN's result


def out(port: int, value: int, size: int = 1) -> Step:
    def fill(run: Any) -> int:
        run.exit_reason = ke.KVM_EXIT_IO
        run.io.direction, run.io.size, run.io.port, run.io.count = ke.KVM_EXIT_IO_OUT, size, port, 1
        run.io.data_offset = PIO_DATA
        ffi.cast("uint8_t *", run)[PIO_DATA : PIO_DATA + size] = value.to_bytes(size, "little")
        return 0

    return fill


def port_in(port: int, size: int = 1) -> Step:
    def fill(run: Any) -> int:
        run.exit_reason = ke.KVM_EXIT_IO
        run.io.direction, run.io.size, run.io.port, run.io.count = ke.KVM_EXIT_IO_IN, size, port, 1
        run.io.data_offset = PIO_DATA
        return 0

    return fill


def mmio_read(address: int, length: int) -> Step:
    def fill(run: Any) -> int:
        run.exit_reason = ke.KVM_EXIT_MMIO
        run.mmio.phys_addr, run.mmio.len, run.mmio.is_write = address, length, 0
        return 0

    return fill


def mmio_write(address: int, data: bytes) -> Step:
    def fill(run: Any) -> int:
        run.exit_reason = ke.KVM_EXIT_MMIO
        run.mmio.phys_addr, run.mmio.len, run.mmio.is_write = address, len(data), 1
        ffi.memmove(run.mmio.data, data.ljust(8, b"\0"), 8)
        return 0

    return fill


def reason(number: int) -> Step:
    def fill(run: Any) -> int:
        run.exit_reason = number
        return 0

    return fill


def interrupted(run: Any) -> int:
    return -1  # KVM_RUN failed: the loop asks `failed()`, as Vcpu's EINTR path does


class Declined(Exception):
    pass


class Target:
    """A port's device in the direct index: a handler and where the device sits."""

    def __init__(self, handler: Callable[[Any], Any], base: int) -> None:
        self.handler = handler
        self.base = base


class Played:
    """A serving loop over `steps`, with every exit each party saw: `handle`, the port router
    (`io`), the MMIO router (`mmio`), the devices in `ports` and `refuse`; `stores` is the store
    index (block -> RAM view, guest address of its first byte)."""

    def __init__(self, steps: list[Step]) -> None:
        self.vcpu = SyntheticVcpu()
        run = self.vcpu.kvm_run
        self.views = [make_view(self.vcpu, run, r) for r in range(64)]
        self.steps = list(steps)
        self.seen: list[tuple[str, Any]] = []
        self.answers: dict[str, Callable[[Any], Any]] = {}
        self.ports: dict[int, Target] = {}
        self.pages: dict[int, Target] = {}
        self.stores: dict[int, tuple[memoryview, int]] = {}
        self.declined = Declined

        def enter() -> int:
            return self.steps.pop(0)(run)

        def failed() -> Exit:
            return self.views[ke.KVM_EXIT_INTR]

        self.io, self.mmio = self.party("io"), self.party("mmio")
        refused = self.party("refuse")
        self.refuse = lambda ex, e: refused((ex, str(e)))
        self.serve = make_serve(self.vcpu, run, self.views, enter, failed, self.party("handle"), self)

    def party(self, name: str) -> Callable[[Any], Any]:
        def see(ex: Any) -> Any:
            if isinstance(ex, tuple):  # refuse's (exit, why)
                self.seen.append((name, (*_what(ex[0]), ex[1])))
                ex = ex[0]
            else:
                self.seen.append((name, _what(ex)))
            answer = self.answers.get(name)
            return answer(ex) if answer is not None else None

        return see

    def device(self, port: int, base: int) -> None:
        self.ports[port] = Target(self.party(f"device {port:#x}"), base)


def _what(ex: Exit) -> Any:
    if isinstance(ex, IoExit):
        return ("out" if ex.is_write else "in", ex.port, ex.size, ex.value)
    if isinstance(ex, MmioExit):
        return (ex.address, ex.length, bytes(ex.data))
    return type(ex).__name__


def test_each_exit_goes_to_its_router_or_to_handle_until_an_answer() -> None:
    p = Played([out(0x3F8, 0x41), mmio_write(0x9000, b"\x12\x34"), interrupted, out(0x80, 0xFFFF, 2),
                reason(ke.KVM_EXIT_HLT)])  # fmt: skip
    p.answers["handle"] = lambda ex: "stop" if isinstance(ex, HltExit) else None
    assert p.serve() == "stop"
    assert p.seen == [
        ("io", ("out", 0x3F8, 1, 0x41)),
        ("mmio", (0x9000, 2, b"\x12\x34")),
        ("handle", "IntrExit"),
        ("io", ("out", 0x80, 2, 0xFFFF)),
        ("handle", "HltExit"),
    ]
    assert p.vcpu.exits == 4  # KVM_RUN returned an exit four times; the failed entry is not counted here
    assert p.steps == []


def test_a_router_answer_ends_the_loop_at_once() -> None:
    p = Played([out(0xF4, 1), out(0xF4, 2), reason(ke.KVM_EXIT_HLT)])
    p.answers["io"] = lambda ex: ("exit", ex.value) if ex.value == 1 else None
    assert p.serve() == ("exit", 1)
    assert len(p.steps) == 2  # not entered again


def test_an_in_answer_set_by_the_router_reaches_the_data_page() -> None:
    p = Played([port_in(0x71, 2), reason(ke.KVM_EXIT_HLT)])

    def answer(ex: IoExit) -> None:
        ex.value = 0xBEEF
        ex.store()

    p.answers["io"] = answer
    p.answers["handle"] = lambda ex: "done"
    assert p.serve() == "done"
    data = ffi.cast("uint16_t *", ffi.cast("char *", p.vcpu.kvm_run) + PIO_DATA)
    assert data[0] == 0xBEEF


def test_the_intr_view_is_what_a_failed_entry_hands_over() -> None:
    p = Played([interrupted])
    p.answers["handle"] = lambda ex: ex
    assert isinstance(p.serve(), IntrExit)


@pytest.mark.parametrize("value", [0, 0x7F, 0xFF])
def test_port_data_of_every_byte_value_is_decoded(value: int) -> None:
    p = Played([out(0x3F8, value)])
    p.answers["io"] = lambda ex: ex.value
    assert p.serve() == value


def test_a_port_in_the_direct_index_goes_to_its_device_with_its_offset() -> None:
    p = Played([out(0x3FF, 0x5A), out(0x3FF, 0xA5), reason(ke.KVM_EXIT_HLT)])
    p.device(0x3FF, 0x3F8)
    offsets: list[int] = []
    p.answers["device 0x3ff"] = lambda ex: offsets.append(ex.offset)
    p.answers["handle"] = lambda ex: "done"
    assert p.serve() == "done"
    assert p.seen[:2] == [("device 0x3ff", ("out", 0x3FF, 1, 0x5A)), ("device 0x3ff", ("out", 0x3FF, 1, 0xA5))]
    assert offsets == [7, 7]


def test_a_direct_in_stores_the_devices_answer_masked_to_the_access_size() -> None:
    p = Played([port_in(0x71, 1), reason(ke.KVM_EXIT_HLT)])
    p.device(0x71, 0x70)

    def answer(ex: IoExit) -> None:
        ex.value = 0x1FF  # wider than the access: the guest reads its low byte

    p.answers["device 0x71"] = answer
    p.answers["handle"] = lambda ex: "done"
    assert p.serve() == "done"
    assert ffi.cast("uint8_t *", ffi.cast("char *", p.vcpu.kvm_run) + PIO_DATA)[0] == 0xFF


def test_a_declined_access_goes_to_refuse_and_is_not_stored() -> None:
    p = Played([port_in(0x510, 2), reason(ke.KVM_EXIT_HLT)])
    p.device(0x510, 0x510)

    def decline(ex: IoExit) -> None:
        ex.value = 0x1234
        raise Declined("only 16-bit OUTs")

    p.answers["device 0x510"] = decline
    p.answers["refuse"] = lambda ex: "refused"
    assert p.serve() == "refused"
    assert p.seen[-1] == ("refuse", ("in", 0x510, 2, 0x1234, "only 16-bit OUTs"))
    assert ffi.cast("uint16_t *", ffi.cast("char *", p.vcpu.kvm_run) + PIO_DATA)[0] == 0


def test_string_io_and_unmapped_ports_go_to_the_router() -> None:
    def rep_out(run: Any) -> int:
        out(0x3FF, 0)(run)
        run.io.count = 3
        return 0

    p = Played([rep_out, out(0x80, 1), reason(ke.KVM_EXIT_HLT)])
    p.device(0x3FF, 0x3F8)
    p.answers["handle"] = lambda ex: "done"
    assert p.serve() == "done"
    assert [who for who, _ in p.seen] == ["io", "io", "handle"]


def test_a_page_in_the_mmio_index_goes_to_its_device_and_others_to_the_router() -> None:
    p = Played([mmio_write(0x9010, b"\x01"), mmio_write(0xA000, b"\x02"), reason(ke.KVM_EXIT_HLT)])
    p.pages[0x9] = Target(p.party("page 9"), 0x9000)
    offsets: list[int] = []
    p.answers["page 9"] = lambda ex: offsets.append(ex.offset)
    p.answers["handle"] = lambda ex: "done"
    assert p.serve() == "done"
    assert p.seen[:2] == [("page 9", (0x9010, 1, b"\x01")), ("mmio", (0xA000, 1, b"\x02"))]
    assert offsets == [0x10]


def test_a_store_into_a_block_of_the_store_index_lands_in_ram_with_no_call() -> None:
    ram = bytearray(0x2000)  # guest 0x8000-0x9fff
    p = Played([mmio_write(0x9010, b"\x01\x02"), mmio_write(0x907F, b"\x03"), reason(ke.KVM_EXIT_HLT)])
    p.stores[0x9000 >> 7] = (memoryview(ram), 0x8000)
    p.answers["handle"] = lambda ex: "done"
    assert p.serve() == "done"
    assert p.seen == [("handle", "HltExit")]
    assert ram[0x1010:0x1012] == b"\x01\x02" and ram[0x107F] == 3


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (mmio_write(0x9000, b"\x11" * 8), "8 bytes: maybe one fragment of a wider store"),
        (mmio_write(0x9FFE, b"\x22\x22"), "ends the page: maybe continued on the next"),
        (mmio_write(0x907E, b"\x33\x33\x33"), "runs into the next block"),
        (mmio_write(0x9080, b"\x44"), "a block not in the index"),
        (mmio_read(0x9000, 1), "a read"),
    ],
)
def test_stores_the_index_cannot_vouch_for_go_to_the_router(step: Step, why: str) -> None:
    ram = bytearray(0x2000)
    p = Played([step, reason(ke.KVM_EXIT_HLT)])
    for block in (0x9000 >> 7, 0x9F80 >> 7):
        p.stores[block] = (memoryview(ram), 0x8000)
    p.answers["handle"] = lambda ex: "done"
    assert p.serve() == "done"
    assert [who for who, _ in p.seen] == ["mmio", "handle"], why
    assert ram == bytes(0x2000), why
