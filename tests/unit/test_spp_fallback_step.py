"""The single-step fallback's ends, on a synthetic vCPU: only a DEBUG exit is a finished step; a
SHUTDOWN during the step is the guest's triple fault (status 8); a step that keeps ending in exits
of the instruction's own with RIP still on it fails with status 80 instead of looping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from kvm_abi import exits as ke
from tests.fakes import mmio_exit
from tests.unit.test_spp_software_engine import TARGET, EngineVcpu, Rig, rig  # noqa: F401
from vmm.errors import ExitStatus
from vmm.kvm.exits import Exit
from vmm.spp.software import NO_PROGRESS_LIMIT
from vmm.verdict import Stop, Verdict

RIP = 0x100200


@dataclass
class SteppingVcpu(EngineVcpu):
    steps: list[Callable[[SteppingVcpu], Exit]] = field(default_factory=list)

    def step(self) -> Exit:
        return self.steps.pop(0)(self)

    @contextmanager
    def borrowed_immediate_exit(self) -> Iterator[None]:
        yield

    def clear_stop(self) -> None:
        pass


def setup(rig: Rig, handled: list[Exit]) -> SteppingVcpu:  # noqa: F811
    vcpu = SteppingVcpu()
    vcpu.kvm_run.s.regs.regs.rip = RIP
    rig.host.vcpus[0] = vcpu

    def handle(ex: Exit) -> Verdict:
        handled.append(ex)
        if ex.reason == ke.KVM_EXIT_SHUTDOWN:
            return Stop(ExitStatus.TRIPLE_FAULT, "triple fault")
        return None

    rig.host.handle = handle  # type: ignore[method-assign]
    rig.spp.protect(TARGET, 0xFFFFFFFD)
    return vcpu


def test_shutdown_during_the_step_is_a_triple_fault_not_a_step(rig: Rig) -> None:  # noqa: F811
    handled: list[Exit] = []
    vcpu = setup(rig, handled)

    def shutdown(v: SteppingVcpu) -> Exit:
        v.kvm_run.s.regs.regs.rip = RIP + 4  # RIP moved: the old rule took this for a finished step
        return v.view(ke.KVM_EXIT_SHUTDOWN)

    vcpu.steps.append(shutdown)
    verdict = rig.engine.step_with_pages_writable(vcpu, "test")
    assert isinstance(verdict, Stop) and verdict.status == ExitStatus.TRIPLE_FAULT
    assert rig.engine.stepped == 0
    assert rig.host.slots.trapped == {TARGET}  # protection is back


def test_steps_that_never_leave_the_instruction_end_with_their_own_status(rig: Rig) -> None:  # noqa: F811
    handled: list[Exit] = []
    vcpu = setup(rig, handled)
    read = lambda v: mmio_exit(v, 0xC0000000, 4, write=False)  # noqa: E731
    vcpu.steps.extend([read] * NO_PROGRESS_LIMIT)
    verdicts = [rig.engine.step_with_pages_writable(vcpu, "test") for _ in range(NO_PROGRESS_LIMIT)]
    assert verdicts[:-1] == [None] * (NO_PROGRESS_LIMIT - 1)
    last = verdicts[-1]
    assert isinstance(last, Stop) and last.status == ExitStatus.SPP_STEP_NO_PROGRESS
    assert f"rip {RIP:#x}" in last.reason
    assert len(handled) == NO_PROGRESS_LIMIT


def test_progress_resets_the_count(rig: Rig) -> None:  # noqa: F811
    handled: list[Exit] = []
    vcpu = setup(rig, handled)
    read = lambda v: mmio_exit(v, 0xC0000000, 4, write=False)  # noqa: E731

    def moved(v: SteppingVcpu) -> Exit:
        v.kvm_run.s.regs.regs.rip = RIP + 3
        return mmio_exit(v, 0xC0000000, 4, write=False)

    vcpu.steps.extend([read] * (NO_PROGRESS_LIMIT - 1) + [moved] + [read] * (NO_PROGRESS_LIMIT - 1))
    for _ in range(2 * NO_PROGRESS_LIMIT - 1):
        if vcpu.steps[0] is read and vcpu.kvm_run.s.regs.regs.rip != RIP:
            vcpu.kvm_run.s.regs.regs.rip = RIP
        assert rig.engine.step_with_pages_writable(vcpu, "test") is None
