"""The guest-state report printed when a run stops on a fatal exit: registers, the code bytes at
RIP and the page-table walk that found them (kvmtool prints the same three)."""

from __future__ import annotations

from vmm.board.memory import GuestMemory
from vmm.errors import PyvmmError
from vmm.kvm.vcpu import Vcpu

CODE_BYTES = 16
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


def guest_state(vcpu: Vcpu, mem: GuestMemory) -> str:
    """A multi-line dump of `vcpu`; each part that cannot be read says so instead of failing."""
    from vmm.cpu.paging import walk  # only a fatal stop needs the walker: keep it off start-up

    lines: list[str] = []
    try:
        regs = vcpu.get_regs()
        sregs = vcpu.get_sregs()
    except PyvmmError as e:
        return f"  (registers unavailable: {e})"
    lines.append(f"  vCPU {vcpu.index}: rip={regs.rip:#018x} rflags={regs.rflags:#010x}")
    for i in range(0, len(GPRS), 4):
        lines.append("  " + "  ".join(f"{n:>3}={getattr(regs, n):#018x}" for n in GPRS[i : i + 4]))
    lines.append(f"  cr0={sregs.cr0:#x} cr2={sregs.cr2:#x} cr3={sregs.cr3:#x} cr4={sregs.cr4:#x} efer={sregs.efer:#x}")
    for name in ("cs", "ss", "ds", "tr"):
        s = getattr(sregs, name)
        lines.append(
            f"  {name}: sel={s.selector:#06x} base={s.base:#x} limit={s.limit:#x} type={s.type:#x} "
            f"dpl={s.dpl} l={s.l} db={s.db}"
        )
    lines.append(
        f"  gdt: base={sregs.gdt.base:#x} limit={sregs.gdt.limit:#x}  "
        f"idt: base={sregs.idt.base:#x} limit={sregs.idt.limit:#x}"
    )
    linear = (sregs.cs.base + regs.rip) & 0xFFFFFFFFFFFFFFFF
    w = walk(linear, sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer, mem.read_u64)
    for st in w.steps:
        lines.append(f"  walk {st.level}[{st.index}] @ {st.table:#x} = {st.entry:#018x}")
    if w.gpa is None:
        lines.append(f"  code at {linear:#x}: not mapped")
    elif not mem.contains(w.gpa, 1):
        lines.append(f"  code at {linear:#x} (gpa {w.gpa:#x}): not in RAM")
    else:
        n = min(CODE_BYTES, mem.region_of(w.gpa).end - w.gpa)
        lines.append(f"  code at {linear:#x} (gpa {w.gpa:#x}): {mem.read(w.gpa, n).hex(' ')}")
    return "\n".join(lines)
