"""One SPP violation event, whichever backend saw it, and the verdicts a policy returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from kvm_abi.subpage import SUBPAGE_SIZE
from vmm.errors import UserCodeError
from vmm.verdict import Verdict

Backend = Literal["software", "kernel:rfc-v1", "kernel:v12", "single-step"]


@dataclass(slots=True)
class SppEvent:
    gpa: int  # first guest-physical byte of the write in a denied sub-page
    page_mask: int  # the page's mask when the write arrived
    vcpu: int
    rip: int | None  # guest RIP as KVM reported it (after the instruction for emulated stores)
    backend: Backend
    write_gpa: int | None = None  # where the whole access starts, when known
    size: int | None = None  # bytes written by the access, when known
    data: bytes | None = None  # the bytes the guest tried to write, when known
    mnemonic: str | None = None  # the writing instruction, when the backend decoded it
    insn_bytes: bytes | None = None  # its encoding (insn_length bytes), when decoded
    insn_length: int | None = None

    @property
    def page(self) -> int:
        return self.gpa & ~0xFFF

    @property
    def subpage(self) -> int:
        return (self.gpa & 0xFFF) // SUBPAGE_SIZE

    def describe(self) -> str:
        what = f"{self.size}-byte write" if self.size else "write"
        at = f" at {self.write_gpa:#x}" if self.write_gpa is not None else ""
        data = f" of {self.data.hex()}" if self.data is not None else ""
        rip = f", rip {self.rip:#x}" if self.rip is not None else ""
        if self.mnemonic is not None:
            rip += f" ({self.mnemonic}" + (f", {self.insn_bytes.hex(' ')})" if self.insn_bytes else ")")
        return (
            f"SPP violation: {what}{at}{data} hits denied sub-page {self.subpage} of page {self.page:#x} "
            f"(mask {self.page_mask:#010x}) at {self.gpa:#x}; vCPU {self.vcpu}{rip}, {self.backend}"
        )


# --- verdicts -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deny:
    """Drop the write; the guest continues after the instruction (the seed patch's behaviour)."""


@dataclass(frozen=True)
class Allow:
    """Let this one write through; the protection stays. `then`, if given, runs once the write is
    in memory (with RIP past the instruction) and its verdict is the exit's: a watchpoint reports
    the value written there, and may stop the run."""

    then: Callable[[], Verdict] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AllowAndUnprotect:
    """Let the write through and drop the protection of the sub-pages it touches (or the page)."""

    scope: Literal["subpage", "page"] = "subpage"

    def __post_init__(self) -> None:
        if self.scope not in ("subpage", "page"):
            raise UserCodeError(f"AllowAndUnprotect({self.scope!r}): the scope is 'subpage' or 'page'")


@dataclass(frozen=True)
class WriteInstead:
    """Write `data` at the access's address instead of what the guest wrote."""

    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes | bytearray | memoryview):
            raise UserCodeError(f"WriteInstead({self.data!r}): the data is bytes")


@dataclass(frozen=True)
class StopVm:
    reason: str = "stopped by SPP policy"

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str):
            raise UserCodeError(f"StopVm({self.reason!r}): the reason is a string")


InjectRip = Literal["after", "instruction"]


@dataclass(frozen=True)
class Inject:
    """Drop the write and raise exception `vector` in the guest (13 = #GP, 14 = #PF). `rip` is
    where the exception is taken: "after" the instruction (trap-like), on the "instruction"
    (fault-like, as the CPU raises #GP and #PF), or None for the backend's own (README, "What
    each backend gives")."""

    vector: int = 13
    error_code: int | None = 0
    rip: InjectRip | None = None

    def __post_init__(self) -> None:
        if self.rip not in (None, "after", "instruction"):
            raise UserCodeError(f"Inject(..., rip={self.rip!r}): rip is None, 'after' or 'instruction'")
        # Checked here, where the policy built it, so a bad one is the policy's one-line error
        # rather than a cffi overflow deep in the injection.
        vector, code = self.vector, self.error_code
        if vector.__class__ is bool or not isinstance(vector, int) or not 0 <= vector < 32:
            raise UserCodeError(f"Inject({vector!r}, ...): the vector is an exception number in 0-31")
        if code is not None and (code.__class__ is bool or not isinstance(code, int) or not 0 <= code <= 0xFFFFFFFF):
            raise UserCodeError(f"Inject({vector}, {code!r}): the error code is None or an int in 0-0xffffffff")


SppVerdict = Deny | Allow | AllowAndUnprotect | WriteInstead | StopVm | Inject
VERDICT_TYPES = (Deny, Allow, AllowAndUnprotect, WriteInstead, StopVm, Inject)
DENY = Deny()
ALLOW = Allow()
