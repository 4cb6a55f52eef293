"""MSR exits as Python events: `MsrExits` sends the RDMSR and WRMSR of chosen MSRs to handlers.

Only the MSRs someone asked for leave the kernel (`vmm.msr.filter`); every other MSR is handled
by KVM as before, at full speed. A handler gets an `MsrAccess` and answers:

- for a read: an int (the value the guest reads), `GP` (the guest takes #GP), or None (the MSR's
  real value, read from KVM);
- for a write: None (the write stands: pyvmm makes it through KVM_SET_MSRS, which the filter does
  not see), an int (that value is written instead), or `GP` (nothing is written, the guest takes
  #GP);
- a `Stop` ends the run, as from any exit handler.

A filtered access that KVM itself would refuse (an MSR it does not implement, a value it rejects)
gives #GP when the handler lets it through, as it would have without the filter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvm_abi import caps
from kvm_abi import exits as ke
from vmm.errors import ConfigError, KvmCallFailed, UserCodeError
from vmm.kvm.exits import MsrExit, RdmsrExit, WrmsrExit
from vmm.kvm.vm import Vm
from vmm.msr.filter import MAX_SPAN, build_filter
from vmm.numbers import parse_int
from vmm.runner.policy import ExitPolicy
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any, Final

    from vmm.kvm.exits import ExitingVcpu


class InjectGp:
    """An MSR handler's answer: the guest's RDMSR or WRMSR raises #GP(0)."""

    _instance: InjectGp | None = None

    def __new__(cls) -> InjectGp:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "GP"


GP: Final = InjectGp()

# names for the MSRs people watch most (the trace and the example handler print them)
MSR_NAMES: Final = {
    0x10: "TSC",
    0x1B: "APIC_BASE",
    0x174: "SYSENTER_CS",
    0x175: "SYSENTER_ESP",
    0x176: "SYSENTER_EIP",
    0xC0000080: "EFER",
    0xC0000081: "STAR",
    0xC0000082: "LSTAR",
    0xC0000083: "CSTAR",
    0xC0000084: "SFMASK",
    0xC0000100: "FS_BASE",
    0xC0000101: "GS_BASE",
    0xC0000102: "KERNEL_GS_BASE",
}


def msr_name(index: int) -> str:
    return MSR_NAMES.get(index, f"{index:#x}")


@dataclass
class MsrAccess:
    """One guest RDMSR or WRMSR of a filtered MSR. `value` is what a WRMSR writes (None for a read)."""

    vcpu: ExitingVcpu
    index: int
    write: bool
    value: int | None
    rip: int | None

    @property
    def name(self) -> str:
        return msr_name(self.index)


MsrAnswer = int | InjectGp | Stop | None
MsrHandler = Callable[[MsrAccess], MsrAnswer]
MsrSpec = int | range | tuple[int, int]  # one index, a Python range, or an inclusive (first, last)


def indices_of(spec: MsrSpec) -> range:
    if isinstance(spec, bool):
        raise ConfigError(f"MSR {spec!r} is not an index")
    if isinstance(spec, int):
        r = range(spec, spec + 1)
    elif isinstance(spec, range):
        r = spec
    elif isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, int) for v in spec):
        r = range(spec[0], spec[1] + 1)
    else:
        raise ConfigError(f"MSR {spec!r} is neither an index, a range nor a (first, last) pair")
    if r.step != 1 or not r or r.start < 0 or r.stop > 1 << 32:
        raise ConfigError(f"MSR range {r.start:#x}-{r.stop - 1:#x} is empty or not within 32-bit indices")
    if len(r) > MAX_SPAN * 8:
        raise ConfigError(f"MSR range of {len(r)} indices is larger than KVM's filter can cover")
    return r


def pass_through(access: MsrAccess) -> MsrAnswer:
    """The handler of an MSR asked for without one (`--msr-exit`): it is traced and counted, and
    reads and writes happen as they would in the kernel."""
    return None


class MsrExits:
    """The MSR handlers of one VM, the filter that sends their MSRs to user space, and the claims
    on the RDMSR/WRMSR exits."""

    def __init__(self, vm: Vm, policy: ExitPolicy) -> None:
        for cap, name in ((caps.KVM_CAP_X86_USER_SPACE_MSR, "KVM_CAP_X86_USER_SPACE_MSR"),
                          (caps.KVM_CAP_X86_MSR_FILTER, "KVM_CAP_X86_MSR_FILTER")):  # fmt: skip
            if not vm.check_extension(cap):
                raise ConfigError(f"MSR exits need {name}, which this host's KVM does not offer")
        # Only filtered MSRs exit: an MSR KVM does not know still gives the guest #GP in the kernel.
        vm.enable_cap(caps.KVM_CAP_X86_USER_SPACE_MSR, ke.KVM_MSR_EXIT_REASON_FILTER)
        self.vm = vm
        self.reads: dict[int, MsrHandler] = {}
        self.writes: dict[int, MsrHandler] = {}
        self.counts = {"read": 0, "write": 0, "gp": 0}
        policy.claim(RdmsrExit, self._on_read)
        policy.claim(WrmsrExit, self._on_write)

    def add(self, spec: MsrSpec, handler: MsrHandler | None, *, reads: bool = True, writes: bool = True) -> None:
        """Send reads and/or writes of the MSRs in `spec` to `handler` (a later call wins where
        they overlap) and update KVM's filter."""
        if not (reads or writes):
            raise ConfigError("an MSR handler needs reads=True, writes=True or both")
        if handler is not None and not callable(handler):
            raise ConfigError(f"MSR handler {handler!r} is not callable")
        fn = handler if handler is not None else pass_through
        r = indices_of(spec)
        new_reads, new_writes = dict(self.reads), dict(self.writes)
        for idx in r:
            if reads:
                new_reads[idx] = fn
            if writes:
                new_writes[idx] = fn
        ranges = build_filter(new_reads, new_writes)  # raises before anything changes
        self.vm.set_msr_filter([fr.as_tuple() for fr in ranges])
        self.reads, self.writes = new_reads, new_writes

    # --- the exits ---------------------------------------------------------------------------
    def _on_read(self, ex: MsrExit) -> Verdict:
        index = ex.index
        handler = self.reads.get(index, pass_through)
        self.counts["read"] += 1
        answer = handler(MsrAccess(ex.vcpu, index, False, None, ex.rip))
        ex.error = False
        if answer is None:
            got = ex.vcpu.get_msrs([index])
            if index in got:
                ex.data = got[index]
                return None
            answer = GP  # KVM does not implement it: what the guest would have got anyway
        if answer is GP:
            ex.error = True
            self.counts["gp"] += 1
            return None
        if isinstance(answer, Stop):
            return answer
        if isinstance(answer, int) and not isinstance(answer, bool):
            ex.data = answer & 0xFFFFFFFFFFFFFFFF
            return None
        raise _bad_answer(handler, answer)

    def _on_write(self, ex: MsrExit) -> Verdict:
        index, value = ex.index, ex.data
        handler = self.writes.get(index, pass_through)
        self.counts["write"] += 1
        answer = handler(MsrAccess(ex.vcpu, index, True, value, ex.rip))
        ex.error = False
        if isinstance(answer, Stop):
            return answer
        if answer is None or (isinstance(answer, int) and not isinstance(answer, bool)):
            to_write = value if answer is None else answer & 0xFFFFFFFFFFFFFFFF
            try:
                ex.vcpu.set_msrs({index: to_write})
            except KvmCallFailed:
                answer = GP  # KVM refuses the MSR or the value: the guest's own WRMSR would #GP
        if answer is GP:
            ex.error = True
            self.counts["gp"] += 1
            return None
        if answer is None or isinstance(answer, int):
            return None
        raise _bad_answer(handler, answer)


def _bad_answer(handler: Any, answer: object) -> UserCodeError:
    name = getattr(handler, "__qualname__", repr(handler))
    return UserCodeError(f"MSR handler {name} returned {answer!r}: an MSR handler returns None, an int, GP or a Stop")


def parse_msr_exit(text: str) -> tuple[range, bool, bool]:
    """`--msr-exit INDEX[-LAST][:r|w|rw]` -> (indices, reads, writes)."""
    spec, _, kinds = text.partition(":")
    kinds = kinds or "rw"
    if kinds not in ("r", "w", "rw", "wr"):
        raise ConfigError(f"--msr-exit {text!r}: the access kind is r, w or rw, not {kinds!r}")
    first_text, dash, last_text = spec.partition("-")
    try:
        first = parse_int(first_text, "MSR index")
        last = parse_int(last_text, "MSR index") if dash else first
    except ValueError as e:
        raise ConfigError(f"--msr-exit {text!r}: {e}") from None
    if last < first:
        raise ConfigError(f"--msr-exit {text!r}: the range ends before it starts")
    return indices_of((first, last)), "r" in kinds, "w" in kinds
