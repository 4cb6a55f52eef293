"""KVM_EXIT_FAIL_ENTRY stops the run with the hardware reason, the CPU and a hint.

This host's KVM checks guest state itself (an invalid CS or a missing TSS runs or triple-faults
instead of failing entry), so the exit is written into a kvm_run page as KVM would fill it and
handed to the exit policy.
"""

from __future__ import annotations

import pytest

from kvm_abi import exits as ke
from tests.fakes import SyntheticVcpu, bare_exit_policy
from vmm.errors import ExitStatus
from vmm.kvm.exits import FailEntryExit


@pytest.mark.parametrize(
    ("hw_reason", "hint"),
    [(0x80000021, "invalid guest state"), (0xFFFFFFFFFFFFFFFF, "VMEXIT_INVALID"), (0x80000007, "VM-entry checks")],
)
def test_fail_entry_is_fatal_with_reason_cpu_and_hint(hw_reason: int, hint: str) -> None:
    vcpu = SyntheticVcpu()
    vcpu.kvm_run.fail_entry.hardware_entry_failure_reason = hw_reason
    vcpu.kvm_run.fail_entry.cpu = 1
    view = vcpu.view(ke.KVM_EXIT_FAIL_ENTRY)
    assert isinstance(view, FailEntryExit)
    assert view.fields() == {"hardware_entry_failure_reason": hw_reason, "cpu": 1}
    verdict = bare_exit_policy().handle(view)
    assert verdict is not None and verdict.fatal
    assert verdict.status == ExitStatus.FAIL_ENTRY
    assert f"VM entry failed on CPU 1: hardware reason {hw_reason:#x}" in verdict.reason
    assert hint in verdict.reason
