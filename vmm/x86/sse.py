"""SSE and VEX (AVX) stores from XMM/YMM registers (and MOVNTI from a GPR): which bytes of the
source register land in memory, and which forms demand alignment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import iced_x86 as iced

from vmm.x86 import checks
from vmm.x86.decode import Instruction, register_value
from vmm.x86.results import EmulationResult, MemoryWrite, StoreEffect, Unsupported
from vmm.x86.state import CpuState

C = iced.Code


@dataclass(frozen=True, slots=True)
class _Form:
    """A store form: `size` bytes from byte `offset` of the source register (or of the element
    the immediate selects, `element` bytes wide, when `imm_mask` is set), aligned to `align`."""

    size: int
    offset: int = 0
    align: int = 0
    vex: bool = False
    imm_mask: int = 0
    source: str = "vector"  # "vector", "gpr" or "mxcsr"


_FORMS: Final[dict[int, _Form]] = {
    C.MOVQ_XMMM64_XMM: _Form(8),
    C.MOVQ_RM64_XMM: _Form(8),
    C.MOVD_RM32_XMM: _Form(4),
    C.MOVSS_XMMM32_XMM: _Form(4),
    C.MOVSD_XMMM64_XMM: _Form(8),
    C.MOVHPS_M64_XMM: _Form(8, offset=8),
    C.MOVHPD_M64_XMM: _Form(8, offset=8),
    C.MOVLPS_M64_XMM: _Form(8),
    C.MOVLPD_M64_XMM: _Form(8),
    C.MOVUPS_XMMM128_XMM: _Form(16),
    C.MOVUPD_XMMM128_XMM: _Form(16),
    C.MOVDQU_XMMM128_XMM: _Form(16),
    C.MOVAPS_XMMM128_XMM: _Form(16, align=16),
    C.MOVAPD_XMMM128_XMM: _Form(16, align=16),
    C.MOVDQA_XMMM128_XMM: _Form(16, align=16),
    C.MOVNTDQ_M128_XMM: _Form(16, align=16),
    C.MOVNTPS_M128_XMM: _Form(16, align=16),
    C.MOVNTPD_M128_XMM: _Form(16, align=16),
    C.MOVNTI_M32_R32: _Form(4, source="gpr"),
    C.MOVNTI_M64_R64: _Form(8, source="gpr"),
    C.PEXTRB_R32M8_XMM_IMM8: _Form(1, imm_mask=15),
    C.PEXTRB_R64M8_XMM_IMM8: _Form(1, imm_mask=15),
    C.PEXTRW_R32M16_XMM_IMM8: _Form(2, imm_mask=7),
    C.PEXTRW_R64M16_XMM_IMM8: _Form(2, imm_mask=7),
    C.PEXTRD_RM32_XMM_IMM8: _Form(4, imm_mask=3),
    C.PEXTRQ_RM64_XMM_IMM8: _Form(8, imm_mask=1),
    C.EXTRACTPS_RM32_XMM_IMM8: _Form(4, imm_mask=3),
    C.EXTRACTPS_R64M32_XMM_IMM8: _Form(4, imm_mask=3),
    C.STMXCSR_M32: _Form(4, source="mxcsr"),
    # VEX forms
    C.VEX_VMOVQ_XMMM64_XMM: _Form(8, vex=True),
    C.VEX_VMOVQ_RM64_XMM: _Form(8, vex=True),
    C.VEX_VMOVD_RM32_XMM: _Form(4, vex=True),
    C.VEX_VMOVSS_M32_XMM: _Form(4, vex=True),
    C.VEX_VMOVSD_M64_XMM: _Form(8, vex=True),
    C.VEX_VMOVHPS_M64_XMM: _Form(8, offset=8, vex=True),
    C.VEX_VMOVHPD_M64_XMM: _Form(8, offset=8, vex=True),
    C.VEX_VMOVLPS_M64_XMM: _Form(8, vex=True),
    C.VEX_VMOVLPD_M64_XMM: _Form(8, vex=True),
    C.VEX_VMOVUPS_XMMM128_XMM: _Form(16, vex=True),
    C.VEX_VMOVUPD_XMMM128_XMM: _Form(16, vex=True),
    C.VEX_VMOVDQU_XMMM128_XMM: _Form(16, vex=True),
    C.VEX_VMOVAPS_XMMM128_XMM: _Form(16, align=16, vex=True),
    C.VEX_VMOVAPD_XMMM128_XMM: _Form(16, align=16, vex=True),
    C.VEX_VMOVDQA_XMMM128_XMM: _Form(16, align=16, vex=True),
    C.VEX_VMOVNTDQ_M128_XMM: _Form(16, align=16, vex=True),
    C.VEX_VMOVNTPS_M128_XMM: _Form(16, align=16, vex=True),
    C.VEX_VMOVNTPD_M128_XMM: _Form(16, align=16, vex=True),
    C.VEX_VMOVUPS_YMMM256_YMM: _Form(32, vex=True),
    C.VEX_VMOVUPD_YMMM256_YMM: _Form(32, vex=True),
    C.VEX_VMOVDQU_YMMM256_YMM: _Form(32, vex=True),
    C.VEX_VMOVAPS_YMMM256_YMM: _Form(32, align=32, vex=True),
    C.VEX_VMOVAPD_YMMM256_YMM: _Form(32, align=32, vex=True),
    C.VEX_VMOVDQA_YMMM256_YMM: _Form(32, align=32, vex=True),
    C.VEX_VMOVNTDQ_M256_YMM: _Form(32, align=32, vex=True),
    C.VEX_VMOVNTPS_M256_YMM: _Form(32, align=32, vex=True),
    C.VEX_VMOVNTPD_M256_YMM: _Form(32, align=32, vex=True),
    C.VEX_VEXTRACTI128_XMMM128_YMM_IMM8: _Form(16, vex=True, imm_mask=1),
    C.VEX_VEXTRACTF128_XMMM128_YMM_IMM8: _Form(16, vex=True, imm_mask=1),
    C.VEX_VPEXTRB_R32M8_XMM_IMM8: _Form(1, vex=True, imm_mask=15),
    C.VEX_VPEXTRB_R64M8_XMM_IMM8: _Form(1, vex=True, imm_mask=15),
    C.VEX_VPEXTRW_R32M16_XMM_IMM8: _Form(2, vex=True, imm_mask=7),
    C.VEX_VPEXTRW_R64M16_XMM_IMM8: _Form(2, vex=True, imm_mask=7),
    C.VEX_VPEXTRD_RM32_XMM_IMM8: _Form(4, vex=True, imm_mask=3),
    C.VEX_VPEXTRQ_RM64_XMM_IMM8: _Form(8, vex=True, imm_mask=1),
    C.VEX_VEXTRACTPS_RM32_XMM_IMM8: _Form(4, vex=True, imm_mask=3),
    C.VEX_VEXTRACTPS_R64M32_XMM_IMM8: _Form(4, vex=True, imm_mask=3),
    C.VEX_VSTMXCSR_M32: _Form(4, vex=True, source="mxcsr"),
}

CODES: Final = frozenset(_FORMS)


def _vector_bytes(state: CpuState, register: int) -> bytes | None:
    if iced.Register.XMM0 <= register <= iced.Register.XMM15:
        return state.xmm[register - iced.Register.XMM0]
    if iced.Register.YMM0 <= register <= iced.Register.YMM15:
        return state.ymm(register - iced.Register.YMM0)
    return None


def _source(insn: Instruction, state: CpuState, form: _Form) -> bytes | Unsupported:
    if form.source == "mxcsr":
        return state.mxcsr.to_bytes(4, "little")
    register = insn.iced.op1_register
    if form.source == "gpr":
        value = register_value(state, register)
        if value is None:
            return Unsupported(f"{insn.mnemonic}: unexpected source register")
        return value.to_bytes(form.size, "little")
    vector = _vector_bytes(state, register)
    if vector is None:
        return Unsupported(f"{insn.mnemonic}: the source register's upper half is not known")
    offset = form.offset
    if form.imm_mask:
        offset += (insn.iced.immediate8 & form.imm_mask) * form.size
    return vector[offset : offset + form.size]


def emulate(insn: Instruction, state: CpuState, _read: Callable[[int, int], bytes]) -> EmulationResult:
    form = _FORMS[insn.iced.code]
    destination = checks.memory_destination(insn)
    if isinstance(destination, Unsupported):
        return destination
    available = checks.avx_available(state) if form.vex else checks.sse_available(state)
    if form.source == "gpr":  # MOVNTI is an SSE2 instruction but needs no SSE state
        available = None
    if available is not None:
        return available
    if form.align and state.mxcsr & checks.MXCSR_MM:
        return Unsupported("MXCSR.MM (AMD misaligned SSE mode) changes the alignment rules")
    problem = checks.check_destination(state, destination, form.size, form.align)
    if problem is not None:
        return problem
    refused = checks.refuse_trap(state)
    if refused is not None:
        return refused
    data = _source(insn, state, form)
    if isinstance(data, Unsupported):
        return data
    return StoreEffect(
        writes=(MemoryWrite(destination.linear, data),),
        rip=checks.next_rip(insn, state),
        rflags=checks.rflags_after(state),
    )
