"""What pyvmm does with an exit nobody else takes: the built-in end of the exit policy's chain.

Each is a plain function of the exit, so a unit test can call it with a synthetic one.
"""

from __future__ import annotations

from collections.abc import Callable

from kvm_abi import exits as ke
from vmm.errors import ExitStatus
from vmm.kvm.exits import (
    Exit,
    FailEntryExit,
    ForeignExit,
    HltExit,
    HwUnknownExit,
    InternalErrorExit,
    ShutdownExit,
    Unknown,
)
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

RFLAGS_IF = 1 << 9


def on_hlt(ex: HltExit) -> Verdict:
    """`hlt` reaches the monitor only without the in-kernel irqchip: nothing can wake the guest."""
    regs = ex.vcpu.kvm_run.s.regs.regs
    if ex.vcpu.sync_regs and regs.rflags & RFLAGS_IF:
        return Stop(ExitStatus.OK, "guest halted with interrupts enabled and no interrupt source")
    return Stop(ExitStatus.OK, "guest halted")


def on_shutdown(ex: ShutdownExit) -> Verdict:
    return Stop(ExitStatus.TRIPLE_FAULT, "guest triple-faulted (KVM_EXIT_SHUTDOWN)", fatal=True)


def on_internal_error(ex: InternalErrorExit) -> Verdict:
    what = f"KVM internal error: {ex.suberror_name}"
    insn = ex.insn_bytes
    if insn is not None:
        what += f" (instruction bytes {insn.hex(' ')}{_decoded(ex, insn)})"
    elif ex.data:
        what += " (data " + " ".join(hex(d) for d in ex.data) + ")"
    return Stop(ExitStatus.INTERNAL_ERROR, what, fatal=True)


def _decoded(ex: InternalErrorExit, insn: bytes) -> str:
    """", `text`" for the instruction KVM failed on, decoded in the vCPU's mode; "" when it does not
    decode or the registers cannot be read (the run is ending: the report must still come)."""
    from vmm.errors import KvmCallFailed
    from vmm.x86 import decode, decoding_state

    try:
        regs, sregs = ex.vcpu.get_regs(), ex.vcpu.get_sregs()
    except (KvmCallFailed, AttributeError):
        return ""
    decoded = decode(insn, decoding_state(regs, sregs))
    return "" if decoded is None else f": {decoded.text}"


# VMX reports a failed entry as exit reason 33/34 with bit 31 set; SVM as VMEXIT_INVALID (-1).
_ENTRY_HINTS = {
    0x80000021: "invalid guest state: check segment registers, CR0/CR4/EFER and the GDT/TSS set-up",
    0x80000022: "MSR loading failed during entry",
    0xFFFFFFFFFFFFFFFF: "the CPU (SVM) rejected the guest state (VMEXIT_INVALID)",
}


def on_fail_entry(ex: FailEntryExit) -> Verdict:
    hw = ex.hardware_entry_failure_reason
    hint = _ENTRY_HINTS.get(hw, "see the CPU manual's VM-entry checks")
    return Stop(ExitStatus.FAIL_ENTRY, f"VM entry failed on CPU {ex.cpu}: hardware reason {hw:#x}: {hint}", fatal=True)


def on_hw_unknown(ex: HwUnknownExit) -> Verdict:
    return Stop(
        ExitStatus.UNHANDLED_EXIT, f"KVM could not handle hardware exit {ex.hardware_exit_reason:#x}", fatal=True
    )


def unhandled(ex: Exit) -> Verdict:
    if isinstance(ex, (Unknown, ForeignExit)):
        what = f"exit reason {ex.raw_reason} ({ke.EXIT_REASON_NAMES.get(ex.raw_reason, 'unknown to pyvmm')})"
    else:
        what = f"exit {ex.name}"
    return Stop(ExitStatus.UNHANDLED_EXIT, f"no handler for {what}", fatal=True)


BY_REASON: dict[int, Callable[[Any], Verdict]] = {
    HltExit.reason: on_hlt,
    ShutdownExit.reason: on_shutdown,
    InternalErrorExit.reason: on_internal_error,
    FailEntryExit.reason: on_fail_entry,
    HwUnknownExit.reason: on_hw_unknown,
}
