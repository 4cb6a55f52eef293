"""Exit reasons x86 KVM never produces still get a view and a named, fatal stop, never a crash.

KVM cannot be made to return such a reason, so the test writes it into a kvm_run page and hands the
resulting view to the exit policy.
"""

from __future__ import annotations

import pytest

from tests.fakes import SyntheticVcpu, bare_exit_policy
from vmm.errors import ExitStatus
from vmm.kvm.exits import ForeignExit, Unknown
from vmm.verdict import Stop

ARM_NISV = 28  # an upstream reason that belongs to arm64


@pytest.mark.parametrize("reason", [99, 63, 1000])  # 63 is in the vCPU's preallocated view table
def test_unknown_reason_is_an_unhandled_exit_naming_the_number(reason: int) -> None:
    view = SyntheticVcpu().view(reason)
    assert isinstance(view, Unknown)
    assert view.raw_reason == reason
    assert view.snapshot()["raw_reason"] == reason

    verdict = bare_exit_policy().handle(view)
    assert isinstance(verdict, Stop)
    assert verdict.status == ExitStatus.UNHANDLED_EXIT
    assert verdict.fatal
    assert f"exit reason {reason} " in verdict.reason


def test_foreign_reason_is_named() -> None:
    view = SyntheticVcpu().view(ARM_NISV)
    assert isinstance(view, ForeignExit)
    assert view.raw_reason == ARM_NISV

    verdict = bare_exit_policy().handle(view)
    assert isinstance(verdict, Stop)
    assert verdict.status == ExitStatus.UNHANDLED_EXIT
    assert "exit reason 28 (ARM_NISV)" in verdict.reason
