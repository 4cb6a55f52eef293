"""A device that declines an access in its range (raises `Unclaimed`) leaves it to the empty bus:
all-ones for every element of a read, noted with the device's reason, fatal under --strict."""

from __future__ import annotations

from typing import Any

from kvm_abi import ffi
from tests.fakes import SyntheticVcpu, io_data, io_exit, mmio_exit
from vmm.board.bus import AddressSpace
from vmm.errors import ExitStatus
from vmm.kvm.exits import IoExit
from vmm.runner.policy import ExitPolicy
from vmm.verdict import Stop, Unclaimed, Verdict


class Rig:
    def __init__(self, *, strict: bool = False) -> None:
        self.ports = AddressSpace("port", 0x10000, direct_index=True)
        self.mmio = AddressSpace("address", 1 << 52, direct_index=False)
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.policy = ExitPolicy(
            self.ports, self.mmio, on_interrupt=lambda ex: None, strict=strict,
            note=lambda kind, **f: self.notes.append((kind, f)),
        )  # fmt: skip
        self.vcpu = SyntheticVcpu()
        self.seen: list[tuple[int, int]] = []
        self.ports.insert(0x1000, 4, self.only_dwords, name="dwords")

    def only_dwords(self, ex: IoExit) -> Verdict:
        if ex.size != 4:
            raise Unclaimed("not a dword")
        self.seen.append((ex.port, ex.value))
        ex.value = 7
        return None


def test_a_declined_read_is_all_ones_for_every_element_and_noted() -> None:
    r = Rig()
    assert r.policy.handle(io_exit(r.vcpu, 0x1000, size=2, write=False, count=3)) is None
    assert io_data(r.vcpu, 2, 3) == [0xFFFF] * 3
    assert r.notes == [("unhandled-io", {"vcpu": 0, "port": 0x1000, "size": 2, "write": False, "why": "not a dword"})]
    assert r.seen == []


def test_an_access_the_device_takes_is_not_noted() -> None:
    r = Rig()
    assert r.policy.handle(io_exit(r.vcpu, 0x1000, size=4, value=0x1234)) is None
    assert r.seen == [(0x1000, 0x1234)] and r.notes == []


def test_a_declined_access_under_strict_stops_with_the_unhandled_status_and_the_reason() -> None:
    r = Rig(strict=True)
    verdict = r.policy.handle(io_exit(r.vcpu, 0x1001, size=1, value=1))
    assert isinstance(verdict, Stop) and verdict.fatal
    assert verdict.status == ExitStatus.UNHANDLED_EXIT
    assert verdict.reason == "port 0x1001: not a dword (--strict)"


def test_a_declined_mmio_read_is_all_ones() -> None:
    r = Rig()

    def decline(ex: Any) -> Verdict:
        raise Unclaimed("reads only")

    r.mmio.insert(0xD0000000, 0x1000, decline, name="dev")
    r.policy.handle(mmio_exit(r.vcpu, 0xD0000008, 4, write=False))
    assert bytes(ffi.buffer(r.vcpu.kvm_run.mmio.data, 4)) == b"\xff" * 4
    assert r.notes[0][1]["why"] == "reads only"
