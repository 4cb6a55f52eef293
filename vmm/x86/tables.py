"""SGDT and SIDT: the descriptor-table registers stored to memory.

The 16-bit limit goes to the low 2 bytes and the base follows it: 8 bytes in 64-bit mode, 4 bytes
with a 32-bit operand size. The 16-bit operand-size form is refused (SDM editions disagree on
whether it stores 24 or 32 bits of the base). With CR4.UMIP set, either raises #GP(0) above CPL
0. No flag changes. KVM retries these forever when the destination is in a read-only memslot
(it never reports them), which is why the SPP engine carries them out itself.
"""

from __future__ import annotations

from typing import Final

import iced_x86 as iced

from vmm.x86 import checks
from vmm.x86.decode import Instruction
from vmm.x86.results import EmulationResult, MemoryWrite, StoreEffect, Unsupported, gp0
from vmm.x86.state import CR4_UMIP, CpuState

_GDT: Final = frozenset({iced.Code.SGDT_M1632, iced.Code.SGDT_M1664})
_IDT: Final = frozenset({iced.Code.SIDT_M1632, iced.Code.SIDT_M1664})
CODES: Final = _GDT | _IDT | {iced.Code.SGDT_M1632_16, iced.Code.SIDT_M1632_16}


def emulate(insn: Instruction, state: CpuState, read: object = None) -> EmulationResult:
    code = insn.iced.code
    if code not in _GDT and code not in _IDT:
        return Unsupported(f"{insn.mnemonic} with a 16-bit operand size is not emulated")
    destination = checks.memory_destination(insn)
    if isinstance(destination, Unsupported):
        return destination
    if state.cr4 & CR4_UMIP and state.cpl > 0:
        return gp0(f"CR4.UMIP is set: {insn.mnemonic} at CPL {state.cpl} raises #GP(0)")
    wide = state.bitness == 64
    size = 10 if wide else 6
    problem = checks.check_destination(state, destination, size)
    if problem is None:
        problem = checks.refuse_trap(state)
    if problem is not None:
        return problem
    base, limit = state.gdtr if code in _GDT else state.idtr
    data = (limit & 0xFFFF).to_bytes(2, "little") + (base & ((1 << (8 * (size - 2))) - 1)).to_bytes(size - 2, "little")
    return StoreEffect(
        writes=(MemoryWrite(destination.linear, data),),
        rip=checks.next_rip(insn, state),
        rflags=checks.rflags_after(state),
    )
