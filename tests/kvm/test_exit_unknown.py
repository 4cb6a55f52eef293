"""Exit reasons x86 KVM never produces still get a view and a named, fatal stop, never a crash.

KVM cannot be made to return such a reason, so the test writes it into the real kvm_run page of a
real vCPU and hands the resulting view to the machine's own dispatcher.
"""

from __future__ import annotations

import io

import pytest

from vmm.errors import ExitStatus
from vmm.kvm.exits import ForeignExit, Unknown, make_view
from vmm.machine import Machine
from vmm.verdict import Stop

pytestmark = pytest.mark.kvm

ARM_NISV = 28  # an upstream reason that belongs to arm64


@pytest.mark.parametrize("reason", [99, 63, 1000])  # 63 is in the vCPU's preallocated view table
def test_unknown_reason_is_an_unhandled_exit_naming_the_number(reason: int) -> None:
    with Machine(console=io.BytesIO()) as m:
        run = m.vcpu.kvm_run
        run.exit_reason = reason
        view = make_view(m.vcpu, run, run.exit_reason)
        assert isinstance(view, Unknown)
        assert view.raw_reason == reason
        assert view.snapshot()["raw_reason"] == reason

        verdict = m.policy.handle(view)

    assert isinstance(verdict, Stop)
    assert verdict.status == ExitStatus.UNHANDLED_EXIT
    assert verdict.fatal
    assert f"exit reason {reason} " in verdict.reason


def test_foreign_reason_is_named() -> None:
    with Machine(console=io.BytesIO()) as m:
        run = m.vcpu.kvm_run
        run.exit_reason = ARM_NISV
        view = make_view(m.vcpu, run, run.exit_reason)
        assert isinstance(view, ForeignExit)
        assert view.raw_reason == ARM_NISV

        verdict = m.policy.handle(view)

    assert isinstance(verdict, Stop)
    assert verdict.status == ExitStatus.UNHANDLED_EXIT
    assert "exit reason 28 (ARM_NISV)" in verdict.reason
