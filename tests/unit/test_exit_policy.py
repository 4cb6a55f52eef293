"""The exit policy on synthetic exits built without a vCPU (as Firecracker tests its exit handler):
infrastructure first, then participants' claims, then the user's table, then the defaults."""

from __future__ import annotations

from typing import Any

import pytest

from kvm_abi import exits as ke
from kvm_abi import ffi
from tests.fakes import SyntheticVcpu, io_data, io_exit, mmio_exit
from vmm.board.bus import AddressSpace
from vmm.errors import ConfigError, ExitStatus
from vmm.kvm.exits import HltExit, InternalErrorExit, IntrExit, IoExit, MmioExit, ShutdownExit
from vmm.runner.policy import PASS, ExitPolicy
from vmm.verdict import Stop, Verdict


def stop(tag: str) -> Any:
    def h(ex: Any) -> Verdict:
        return Stop(0, tag)

    return h


class Rig:
    def __init__(self, *, strict: bool = False) -> None:
        self.ports = AddressSpace("port", 0x10000, direct_index=True)
        self.mmio = AddressSpace("address", 1 << 52, direct_index=False)
        self.kicks: list[int] = []
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.policy = ExitPolicy(
            self.ports, self.mmio, on_interrupt=self.on_interrupt, strict=strict,
            note=lambda kind, **f: self.notes.append((kind, f)),
        )  # fmt: skip
        self.vcpu = SyntheticVcpu()

    def on_interrupt(self, ex: Any) -> Verdict:
        self.kicks.append(ex.vcpu.index)
        return None


def test_io_reaches_the_device_with_its_offset() -> None:
    r = Rig()
    seen: list[tuple[int, int, int]] = []
    r.ports.insert(0x3F8, 8, lambda ex: seen.append((ex.port, ex.offset, ex.value)), name="uart")
    assert r.policy.handle(io_exit(r.vcpu, 0x3FD, value=0x41)) is None
    assert seen == [(0x3FD, 5, 0x41)]


def test_io_read_from_the_device_lands_in_the_page() -> None:
    r = Rig()

    def answer(ex: IoExit) -> None:
        ex.value = 0xA5

    r.ports.insert(0x60, 1, answer, name="kbd")
    r.policy.handle(io_exit(r.vcpu, 0x60, write=False))
    assert io_data(r.vcpu, 1) == [0xA5]


def test_string_io_hands_each_element_over_and_stops_at_a_verdict() -> None:
    r = Rig()
    got: list[int] = []

    def take(ex: IoExit) -> Verdict:
        got.append(ex.index)
        return Stop(3, "enough") if ex.index == 2 else None

    r.ports.insert(0x80, 1, take, name="post")
    assert r.policy.handle(io_exit(r.vcpu, 0x80, count=5)) == Stop(3, "enough")
    assert got == [0, 1, 2]


def test_unhandled_port_reads_all_ones_every_element_and_is_noted() -> None:
    r = Rig()
    assert r.policy.handle(io_exit(r.vcpu, 0x1234, size=2, write=False, count=3)) is None
    assert io_data(r.vcpu, 2, 3) == [0xFFFF] * 3
    assert r.notes == [("unhandled-io", {"vcpu": 0, "port": 0x1234, "size": 2, "write": False})]


def test_unhandled_port_under_strict_is_fatal() -> None:
    r = Rig(strict=True)
    verdict = r.policy.handle(io_exit(r.vcpu, 0x1234))
    assert isinstance(verdict, Stop) and verdict.status == ExitStatus.UNHANDLED_EXIT and verdict.fatal


def test_mmio_reaches_the_device_with_its_offset_and_holes_read_all_ones() -> None:
    r = Rig()
    seen: list[int] = []
    r.mmio.insert(0xD0000000, 0x1000, lambda ex: seen.append(ex.offset), name="dev")
    r.policy.handle(mmio_exit(r.vcpu, 0xD0000010, 4, write=True, data=b"abcd"))
    assert seen == [0x10]
    r.policy.handle(mmio_exit(r.vcpu, 0xE0000000, 4, write=False))
    assert bytes(ffi.buffer(r.vcpu.kvm_run.mmio.data, 4)) == b"\xff" * 4


def test_intr_goes_to_the_runner_and_cannot_be_replaced() -> None:
    r = Rig()
    assert r.policy.handle(r.vcpu.view(ke.KVM_EXIT_INTR)) is None
    assert r.kicks == [0]
    for kind in (IntrExit, IoExit, MmioExit):
        with pytest.raises(ConfigError, match="cannot be replaced"):
            r.policy.on_exit(kind, stop("mine"))
        with pytest.raises(ConfigError, match="cannot be claimed"):
            r.policy.claim(kind, stop("mine"))
    r.policy.handle(r.vcpu.view(ke.KVM_EXIT_INTR))
    assert r.kicks == [0, 0]


def test_defaults_for_fatal_exits() -> None:
    r = Rig()
    shutdown = r.policy.handle(r.vcpu.view(ke.KVM_EXIT_SHUTDOWN))
    assert isinstance(shutdown, Stop) and shutdown.status == ExitStatus.TRIPLE_FAULT and shutdown.fatal
    halted = r.policy.handle(r.vcpu.view(ke.KVM_EXIT_HLT))
    assert isinstance(halted, Stop) and halted.status == ExitStatus.OK
    unknown = r.policy.handle(r.vcpu.view(ke.KVM_EXIT_NMI))
    assert isinstance(unknown, Stop) and unknown.status == ExitStatus.UNHANDLED_EXIT and "NMI" in unknown.reason


def test_user_handler_replaces_the_default_and_later_replaces_earlier() -> None:
    r = Rig()
    r.policy.on_exit(HltExit, stop("first"))
    assert r.policy.handle(r.vcpu.view(ke.KVM_EXIT_HLT)) == Stop(0, "first")
    r.policy.on_exit(HltExit.reason, stop("raw"))  # a raw reason number addresses the same slot
    assert r.policy.handle(r.vcpu.view(ke.KVM_EXIT_HLT)) == Stop(0, "raw")


def test_claims_come_before_the_user_and_pass_on() -> None:
    r = Rig()
    order: list[str] = []

    def spp_like(ex: Any) -> Any:
        order.append("claim")
        return PASS

    r.policy.on_exit(InternalErrorExit, lambda ex: order.append("user"))
    r.policy.claim(InternalErrorExit, spp_like)
    r.policy.handle(r.vcpu.view(ke.KVM_EXIT_INTERNAL_ERROR))
    assert order == ["claim", "user"]
    # a handler registered after a claim does not displace it
    r.policy.on_exit(InternalErrorExit, lambda ex: order.append("user2"))
    r.policy.handle(r.vcpu.view(ke.KVM_EXIT_INTERNAL_ERROR))
    assert order == ["claim", "user", "claim", "user2"]


def test_a_claim_that_takes_the_exit_ends_the_chain() -> None:
    r = Rig()
    r.policy.claim(ShutdownExit, stop("claimed"))
    assert r.policy.handle(r.vcpu.view(ke.KVM_EXIT_SHUTDOWN)) == Stop(0, "claimed")


def test_raw_reasons_without_a_class_reach_a_handler_by_number() -> None:
    r = Rig()
    r.policy.claim(28, stop("spp-rfc-v1"))  # the SPP patch's exit, an Unknown/Foreign view here
    assert r.policy.handle(r.vcpu.view(28)) == Stop(0, "spp-rfc-v1")
    unknown = r.policy.handle(r.vcpu.view(200))
    assert isinstance(unknown, Stop) and "200" in unknown.reason and unknown.status == ExitStatus.UNHANDLED_EXIT
