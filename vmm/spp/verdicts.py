"""Carrying out a policy's verdict: the rules every SPP backend shares, written once, and one
`match` over the verdict kinds that hands each to the backend's executor.

Each backend (the software engine, the rfc-v1 and v12 kernel profiles) has an executor: how it
denies, allows, unprotects, writes instead and injects, given where its write stands (not yet
applied; dropped by the kernel with RIP past the instruction; held with RIP on it). What is the
same everywhere lives here: StopVm ends the run with SPP_STOP and the event in the reason, and an
injected exception carries an error code exactly when its vector pushes one (anything else makes
VM entry fail). `vmm.spp.event.VERDICT_TYPES` and `assert_never` keep the match exhaustive.
"""

from __future__ import annotations

from typing import Any, Protocol, assert_never

from vmm.errors import ExitStatus
from vmm.spp.event import (
    Allow,
    AllowAndUnprotect,
    Deny,
    Inject,
    InjectRip,
    SppEvent,
    SppVerdict,
    StopVm,
    WriteInstead,
)
from vmm.verdict import Stop, Verdict

# Vectors whose delivery pushes an error code (#DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX).
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
PF_VECTOR = 14


class Executor(Protocol):
    def deny(self, event: SppEvent) -> Verdict: ...
    def allow(self, event: SppEvent) -> Verdict: ...
    def allow_and_unprotect(self, event: SppEvent, scope: str) -> Verdict: ...
    def write_instead(self, event: SppEvent, data: bytes) -> Verdict: ...
    def inject(self, event: SppEvent, vector: int, error_code: int | None, rip: InjectRip | None) -> Verdict: ...


def carry_out(verdict: SppVerdict, event: SppEvent, executor: Executor) -> Verdict:
    match verdict:
        case Deny():
            return executor.deny(event)
        case Allow(then=then):
            done = executor.allow(event)
            return then() if then is not None and done is None else done
        case AllowAndUnprotect(scope=scope):
            return executor.allow_and_unprotect(event, scope)
        case WriteInstead(data=data):
            return executor.write_instead(event, data)
        case StopVm(reason=reason):
            return Stop(ExitStatus.SPP_STOP, f"{reason}: {event.describe()}")
        case Inject(vector=vector, error_code=code, rip=rip):
            # delivery of these vectors pushes an error code, and of no others: VM entry checks it
            return executor.inject(event, vector, (code or 0) if vector in ERROR_CODE_VECTORS else None, rip)
        case _:
            assert_never(verdict)


class EventVcpu(Protocol):
    def get_sregs(self) -> Any: ...
    def set_sregs(self, sregs: Any) -> None: ...
    def get_vcpu_events(self) -> Any: ...
    def set_vcpu_events(self, ev: Any) -> None: ...


def unavailable(event: SppEvent, what: str) -> Stop:
    """The end of a run whose policy asked for `what`, which this backend cannot do here."""
    return Stop(ExitStatus.SPP_VERDICT_UNAVAILABLE, f"{what}: {event.describe()}", fatal=True)


def inject_exception(vcpu: EventVcpu, vector: int, error_code: int | None, cr2: int) -> None:
    """Raise `vector` in the guest at its next entry (KVM_SET_VCPU_EVENTS). For #PF, CR2 gets
    `cr2`. flags = 0 leaves NMI, SIPI, shadow and SMM state as they are."""
    if vector == PF_VECTOR:
        sregs = vcpu.get_sregs()
        sregs.cr2 = cr2
        vcpu.set_sregs(sregs)
    ev = vcpu.get_vcpu_events()
    ev.exception.injected = 1
    ev.exception.nr = vector
    ev.exception.has_error_code = 1 if error_code is not None else 0
    ev.exception.error_code = error_code or 0
    ev.flags = 0
    vcpu.set_vcpu_events(ev)
