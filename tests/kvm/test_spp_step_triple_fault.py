"""A real triple fault during the single-step fallback ends the run with status 8, as it does with
nothing protected, and is not counted as a finished step.

spp-stores' FAR_CALL_FAULT_NO_IDT (CPL 0) puts a GDT in a protected page whose code descriptor
has its accessed bit clear, loads an IDT with limit 0 and makes a far call through that descriptor
to a non-canonical offset. Loading CS makes the CPU write the accessed bit into the protected
page, which KVM retries for ever, so the engine's watchdog single-steps the call with the pages
writable; within that step the call raises #GP, which with no IDT is a triple fault
(KVM_EXIT_SHUTDOWN). The engine used to count a SHUTDOWN that moved RIP as the step's end."""

from __future__ import annotations

import pytest

from tests.spp_driver import FAR_CALL_FAULT_NO_IDT, TARGET, Op, StoreDriver, stores_machine
from vmm.errors import ExitStatus
from vmm.kvm.exits import ShutdownExit
from vmm.spp.event import ALLOW, SppEvent, SppVerdict
from vmm.spp.software import SoftwareSpp

pytestmark = pytest.mark.kvm

GDT = TARGET + 0x100
ACCESSED_BYTE = GDT + 8 + 5  # the code descriptor's type byte: 0x9a, 0x9b once accessed


def allow_the_guests_own_stores(event: SppEvent) -> SppVerdict | None:
    """The guest writes its GDT with plain stores (software events): let those through."""
    return ALLOW if event.backend == "software" else None


def test_without_protection_it_is_a_triple_fault() -> None:
    with stores_machine() as m:
        StoreDriver(m, 0, [[Op(FAR_CALL_FAULT_NO_IDT, GDT)]])
        result = m.run(timeout=20)
        assert result.status == ExitStatus.TRIPLE_FAULT, result.reason
        assert m.memory.read(ACCESSED_BYTE, 1) == b"\x9b"  # the CPU set the accessed bit first


def test_triple_fault_inside_the_fallback_step(monkeypatch: pytest.MonkeyPatch) -> None:
    step_exits: list[str] = []
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.add_policy(allow_the_guests_own_stores)
        spp.protect(TARGET, 0)
        engine = spp.backend
        assert isinstance(engine, SoftwareSpp)
        vcpu = m.vcpus[0]
        real_step = vcpu.step

        def recording_step() -> object:
            ex = real_step()
            step_exits.append(type(ex).__name__)
            return ex

        monkeypatch.setattr(vcpu, "step", recording_step)
        StoreDriver(m, 0, [[Op(FAR_CALL_FAULT_NO_IDT, GDT)]])
        result = m.run(timeout=20)
        assert result.status == ExitStatus.TRIPLE_FAULT, result.reason
        assert step_exits and step_exits[-1] == ShutdownExit.__name__  # the SHUTDOWN came out of the step
        assert engine.stepped == 0  # and was not taken for a finished one
        assert m.memory.read(ACCESSED_BYTE, 1) == b"\x9a"  # the step's write into the protected page was put back
