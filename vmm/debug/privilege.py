"""Whether a single step from here would end at CPL 3, where this host does not report it.

On this project's hosts KVM_GUESTDBG_SINGLESTEP reaches the monitor only at CPL 0; a step that
lands at CPL 3 is not reported and can leak a #DB into the guest (README, host notes). So a step
is offered only at CPL 0 and not on an instruction that can move to an outer privilege level.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any


# iced-x86's mnemonic names of instructions that can return to an outer privilege level
TO_OUTER_PRIVILEGE = ("IRET", "IRETD", "IRETQ", "RETF", "SYSEXIT", "SYSEXITQ", "SYSRET", "SYSRETQ")


def step_refusal(vcpu: Any, memory: Any) -> str | None:
    """Why a single step of `vcpu` cannot be offered here (one line), or None."""
    sregs = vcpu.get_sregs()
    if int(sregs.cs.selector) & 3 == 3:
        return (
            f"vCPU {vcpu.index} is at CPL 3: single-step is not reported to the monitor there on this host "
            "(the guest would receive the #DB)"
        )
    rip = int(vcpu.get_regs().rip)
    code = _code_at(vcpu, memory, rip)
    if not code:
        return None
    import iced_x86

    bits = 64 if int(sregs.cs.l) else 32 if int(sregs.cs.db) else 16
    insn = iced_x86.Decoder(bits, code, ip=rip).decode()
    if insn.mnemonic in {getattr(iced_x86.Mnemonic, n) for n in TO_OUTER_PRIVILEGE}:
        return (
            f"the instruction at {rip:#x} on vCPU {vcpu.index} may return to CPL 3, where a single step is not "
            "reported on this host (the guest would receive the #DB)"
        )
    return None


def _code_at(vcpu: Any, memory: Any, rip: int) -> bytes:
    out = b""
    while len(out) < 15:
        at = rip + len(out)
        gpa = vcpu.translate(at)
        n = min(15 - len(out), 0x1000 - (at & 0xFFF))
        if gpa is None or not memory.contains(gpa, n):
            break
        out += memory.read(gpa, n)
    return out
