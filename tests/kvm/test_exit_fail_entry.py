"""KVM_EXIT_FAIL_ENTRY stops the run with the hardware reason, the CPU and a hint.

This host's KVM checks guest state itself (an invalid CS or a missing TSS runs or triple-faults
instead of failing entry), so the exit is written into the real kvm_run page of a real vCPU, as
KVM would fill it, and handed to the machine's own dispatcher.
"""

from __future__ import annotations

import io

import pytest

from kvm_abi import exits as ke
from vmm.errors import ExitStatus
from vmm.kvm.exits import FailEntryExit
from vmm.machine import Machine

pytestmark = pytest.mark.kvm


@pytest.mark.parametrize(
    ("hw_reason", "hint"),
    [(0x80000021, "invalid guest state"), (0xFFFFFFFFFFFFFFFF, "VMEXIT_INVALID"), (0x80000007, "VM-entry checks")],
)
def test_fail_entry_is_fatal_with_reason_cpu_and_hint(hw_reason: int, hint: str) -> None:
    with Machine(console=io.BytesIO()) as m:
        run = m.vcpu.kvm_run
        run.exit_reason = ke.KVM_EXIT_FAIL_ENTRY
        run.fail_entry.hardware_entry_failure_reason = hw_reason
        run.fail_entry.cpu = 1
        view = m.vcpu._views[ke.KVM_EXIT_FAIL_ENTRY]
        assert isinstance(view, FailEntryExit)
        assert view.fields() == {"hardware_entry_failure_reason": hw_reason, "cpu": 1}
        verdict = m.policy.handle(view)
    assert verdict is not None and verdict.fatal
    assert verdict.status == ExitStatus.FAIL_ENTRY
    assert f"VM entry failed on CPU 1: hardware reason {hw_reason:#x}" in verdict.reason
    assert hint in verdict.reason
