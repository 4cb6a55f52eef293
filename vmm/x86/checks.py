"""The checks every emulated store shares: instruction availability (#UD, #NM), segment and
canonical-address checks on the destination, alignment (#GP(0)), and the conditions under which
the result would not be exact (alignment checking, a single-step trap to deliver)."""

from __future__ import annotations

from typing import Final

import iced_x86 as iced

from vmm.x86.decode import Access, Instruction, MemoryOperand
from vmm.x86.results import VECTOR_GP, VECTOR_SS, Fault, Unsupported, gp0, nm, ud
from vmm.x86.state import (
    CR0_AM,
    CR0_EM,
    CR0_TS,
    CR4_LA57,
    CR4_OSFXSR,
    CR4_OSXSAVE,
    RFLAGS_AC,
    RFLAGS_RF,
    RFLAGS_TF,
    CpuState,
)

Problem = Fault | Unsupported

MXCSR_MM: Final = 1 << 17  # AMD's misaligned-SSE mode: alignment faults no longer as the SDM says
_U64: Final = (1 << 64) - 1


def next_rip(insn: Instruction, state: CpuState) -> int:
    """RIP after the instruction: IP/EIP wrap at the code segment's operand size."""
    mask = _U64 if state.bitness == 64 else (1 << state.bitness) - 1
    return (state.rip + insn.length) & mask


def rflags_after(state: CpuState) -> int:
    """RFLAGS once the instruction completes: RF is cleared."""
    return state.rflags & ~RFLAGS_RF


def refuse_trap(state: CpuState) -> Unsupported | None:
    if state.rflags & RFLAGS_TF:
        return Unsupported("RFLAGS.TF is set: a single-step #DB follows the instruction")
    return None


def x87_available(state: CpuState) -> Problem | None:
    if state.cr0 & (CR0_EM | CR0_TS):
        return nm("CR0.EM or CR0.TS is set: x87 instructions raise #NM")
    return None


def sse_available(state: CpuState) -> Problem | None:
    if state.cr0 & CR0_EM:
        return ud("CR0.EM is set: SSE instructions raise #UD")
    if not state.cr4 & CR4_OSFXSR:
        return ud("CR4.OSFXSR is clear: SSE instructions raise #UD")
    if state.cr0 & CR0_TS:
        return nm("CR0.TS is set: SSE instructions raise #NM")
    return None


def avx_available(state: CpuState) -> Problem | None:
    if not state.protected:
        return ud("VEX instructions raise #UD in real and virtual-8086 mode")
    if not state.cr4 & CR4_OSXSAVE:
        return ud("CR4.OSXSAVE is clear: VEX instructions raise #UD")
    if state.xcr0 is None:
        return Unsupported("XCR0 is not known")
    if state.xcr0 & 0x6 != 0x6:
        return ud("XCR0 does not enable SSE and AVX state: VEX instructions raise #UD")
    if state.cr0 & CR0_TS:
        return nm("CR0.TS is set: VEX instructions raise #NM")
    return None


def xsave_available(state: CpuState) -> Problem | None:
    if not state.cr4 & CR4_OSXSAVE:
        return ud("CR4.OSXSAVE is clear: XSAVE instructions raise #UD")
    if state.cr0 & CR0_TS:
        return nm("CR0.TS is set: XSAVE instructions raise #NM")
    if state.xcr0 is None:
        return Unsupported("XCR0 is not known")
    return None


def memory_destination(insn: Instruction) -> MemoryOperand | Unsupported:
    """The instruction's single memory operand, which it writes; refuse anything else."""
    if insn.iced.op0_kind != iced.OpKind.MEMORY:
        return Unsupported(f"{insn.mnemonic} here writes a register, not memory")
    written = [m for m in insn.memory if m.access is not Access.READ]
    if len(written) != 1 or len(insn.memory) != 1:
        return Unsupported(f"{insn.mnemonic}: expected one memory operand")
    return written[0]


def _segment_fault(operand: MemoryOperand, reason: str) -> Fault:
    if operand.segment == "ss":
        return Fault(VECTOR_SS, 0, reason)
    return Fault(VECTOR_GP, 0, reason)


def _canonical(address: int, state: CpuState) -> bool:
    bits = 57 if state.cr4 & CR4_LA57 else 48
    top = address >> (bits - 1)
    return top == 0 or top == (1 << (65 - bits)) - 1


def check_destination(state: CpuState, operand: MemoryOperand, size: int, alignment: int = 0) -> Problem | None:
    """Segment/canonical checks on `size` bytes at the operand, then alignment (#GP(0) whatever
    the segment) when `alignment` is given. Alignment checking (#AC) is refused, not modelled."""
    fault = _address_fault(state, operand, size)
    if isinstance(fault, Unsupported):
        return fault
    misaligned = alignment and operand.linear % alignment
    if fault is not None:
        if misaligned and fault.vector != VECTOR_GP:
            return Unsupported("both a stack-segment fault and an alignment #GP apply")
        return fault
    if misaligned:
        return gp0(f"memory operand not aligned on a {alignment}-byte boundary")
    if state.cr0 & CR0_AM and state.rflags & RFLAGS_AC and state.cpl == 3:
        natural = 1 << max(size - 1, 0).bit_length()
        if operand.linear % min(natural, 64):
            return Unsupported("alignment checking is enabled and the access is misaligned")
    return None


def _address_fault(state: CpuState, operand: MemoryOperand, size: int) -> Problem | None:
    if operand.effective + size > 1 << operand.address_bits:
        return Unsupported("the operand wraps around the end of the address space")
    if state.bitness == 64:
        if not (_canonical(operand.linear, state) and _canonical(operand.linear + size - 1, state)):
            return _segment_fault(operand, "non-canonical address")
        return None
    if operand.linear + size > 1 << 32:
        return Unsupported("the operand wraps around 4 GiB")
    segment = getattr(state, operand.segment)
    if state.protected:
        if segment.unusable:
            return _segment_fault(operand, f"{operand.segment} holds a null or unusable segment")
        if not segment.writable:
            return _segment_fault(operand, f"{operand.segment} is not a writable data segment")
        if segment.expand_down:
            return Unsupported("expand-down segments are not modelled")
    if operand.effective + size - 1 > segment.limit:
        return _segment_fault(operand, f"beyond the {operand.segment} segment limit")
    return None
