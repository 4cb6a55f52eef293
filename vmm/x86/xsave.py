"""FXSAVE/FXSAVE64 and XSAVE/XSAVEOPT/XSAVEC (and their 64-bit forms) for state components 0-2.

The legacy region is the FXSAVE image: FCW, FSW, abridged FTW, FOP, FIP/FDP (64-bit offsets with
REX.W, else 32-bit offsets with the FCS/FDS selectors), MXCSR and MXCSR_MASK, ST0-7 (each in a
16-byte slot, upper 6 bytes zero), XMM0-15 in 64-bit mode, XMM0-7 elsewhere (the XMM8-15 fields
are then left alone, as are bytes 416-511; likewise XSAVE saves only YMM0-7's upper halves there).

XSAVE writes every requested component (RFBM = XCR0 & EDX:EAX) and sets XSTATE_BV[i] = XINUSE[i]
for i in RFBM, keeping the other bits (a read of the header); MXCSR goes with SSE or AVX.
XSAVEOPT skips components whose XINUSE bit is clear (the init optimisation; its modified
optimisation only skips writes of values the area already holds) and still writes MXCSR.
XSAVEC writes the compacted header (XSTATE_BV = XINUSE & RFBM, XCOMP_BV = RFBM | bit 63), skips
components not in use, and counts SSE as in use when MXCSR is not 1F80H (then MXCSR goes with
it); for components 0-2 its layout is the standard one.

Refused: components above AVX (their state is not in CpuState), unknown XINUSE, FCS/FDS or
MXCSR_MASK where the image needs them, CR4.OSFXSR clear (FXSAVE's XMM save is then
implementation-defined), and AMD's fast FXSAVE (EFER.FFXSR at CPL 0 in 64-bit mode skips the XMM
registers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import iced_x86 as iced

from vmm.x86 import checks
from vmm.x86.decode import Instruction, MemoryOperand
from vmm.x86.results import EmulationResult, Fault, MemoryWrite, StoreEffect, Unsupported
from vmm.x86.state import (
    CR4_OSFXSR,
    EFER_FFXSR,
    FX_FCW,
    FX_FDP,
    FX_FIP,
    FX_FOP,
    FX_FSW,
    FX_FTW,
    FX_MXCSR,
    FX_ST,
    FX_XMM,
    MXCSR_INIT,
    XSAVE_AVX,
    XSAVE_HEADER,
    CpuState,
)

C = iced.Code
FXSAVE_CODES: Final = frozenset({C.FXSAVE_M512BYTE, C.FXSAVE64_M512BYTE})
_XSAVE_KIND: Final[dict[int, tuple[str, bool]]] = {
    C.XSAVE_MEM: ("xsave", False),
    C.XSAVE64_MEM: ("xsave", True),
    C.XSAVEOPT_MEM: ("xsaveopt", False),
    C.XSAVEOPT64_MEM: ("xsaveopt", True),
    C.XSAVEC_MEM: ("xsavec", False),
    C.XSAVEC64_MEM: ("xsavec", True),
}
XSAVE_CODES: Final = frozenset(_XSAVE_KIND)
CODES: Final = FXSAVE_CODES | XSAVE_CODES

X87_RANGES: Final = ((0, 24), (32, 160))
MXCSR_RANGE: Final = (24, 32)
XMM_RANGE: Final = (160, 416)
XMM_RANGE_LEGACY: Final = (160, 288)  # outside 64-bit mode only XMM0-7 are saved
HEADER_BV: Final = (512, 520)
HEADER_BV_COMP: Final = (512, 528)
AVX_RANGE: Final = (576, 832)
AVX_RANGE_LEGACY: Final = (576, 704)


def _fill_x87(image: bytearray, state: CpuState, wide: bool) -> Unsupported | None:
    image[FX_FCW : FX_FCW + 2] = state.fcw.to_bytes(2, "little")
    image[FX_FSW : FX_FSW + 2] = state.fsw.to_bytes(2, "little")
    image[FX_FTW] = state.ftw & 0xFF
    image[FX_FOP : FX_FOP + 2] = (state.fop & 0x7FF).to_bytes(2, "little")
    if wide:
        image[FX_FIP : FX_FIP + 8] = (state.fip & (1 << 64) - 1).to_bytes(8, "little")
        image[FX_FDP : FX_FDP + 8] = (state.fdp & (1 << 64) - 1).to_bytes(8, "little")
    else:
        if state.fcs is None or state.fds is None:
            return Unsupported("the x87 FCS/FDS selectors are not known for the 32-bit save format")
        image[FX_FIP : FX_FIP + 4] = (state.fip & 0xFFFF_FFFF).to_bytes(4, "little")
        image[FX_FIP + 4 : FX_FIP + 6] = state.fcs.to_bytes(2, "little")
        image[FX_FDP : FX_FDP + 4] = (state.fdp & 0xFFFF_FFFF).to_bytes(4, "little")
        image[FX_FDP + 4 : FX_FDP + 6] = state.fds.to_bytes(2, "little")
    for i, value in enumerate(state.st):
        image[FX_ST + 16 * i : FX_ST + 16 * i + 10] = value
    return None


def _fill_sse(image: bytearray, state: CpuState) -> Unsupported | None:
    """MXCSR, MXCSR_MASK and XMM0-15 (callers write only XMM0-7 outside 64-bit mode)."""
    if state.mxcsr_mask is None:
        return Unsupported("MXCSR_MASK is not known (pass the XSAVE region)")
    image[FX_MXCSR : FX_MXCSR + 4] = state.mxcsr.to_bytes(4, "little")
    image[FX_MXCSR + 4 : FX_MXCSR + 8] = state.mxcsr_mask.to_bytes(4, "little")
    for i, value in enumerate(state.xmm):
        image[FX_XMM + 16 * i : FX_XMM + 16 * i + 16] = value
    return None


def legacy_image(state: CpuState, wide: bool, x87: bool = True, sse: bool = True) -> bytearray | Unsupported:
    """The 416 bytes FXSAVE writes (64-bit format with `wide`); parts left out stay zero."""
    image = bytearray(416)
    refused = _fill_x87(image, state, wide) if x87 else None
    if refused is None and sse:
        refused = _fill_sse(image, state)
    return image if refused is None else refused


def _merge(image: bytes | bytearray, base: int, ranges: list[tuple[int, int]]) -> tuple[MemoryWrite, ...]:
    """One write per run of adjacent ranges, in ascending address order."""
    runs: list[list[int]] = []
    for start, end in sorted(ranges):
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    return tuple(MemoryWrite(base + start, bytes(image[start:end])) for start, end in runs)


def _common(insn: Instruction, state: CpuState, alignment: int, size: int) -> MemoryOperand | Fault | Unsupported:
    destination = checks.memory_destination(insn)
    if isinstance(destination, Unsupported):
        return destination
    problem = checks.check_destination(state, destination, size, alignment)
    if problem is None:
        problem = checks.refuse_trap(state)
    if problem is not None:
        return problem
    return destination


def emulate_fxsave(insn: Instruction, state: CpuState, _read: Callable[[int, int], bytes]) -> EmulationResult:
    problem = checks.x87_available(state)
    if problem is not None:
        return problem
    if not state.cr4 & CR4_OSFXSR:
        return Unsupported("CR4.OSFXSR is clear: whether FXSAVE saves XMM and MXCSR is implementation-defined")
    if state.efer & EFER_FFXSR and state.cpl == 0 and state.bitness == 64:
        return Unsupported("EFER.FFXSR: AMD's fast FXSAVE skips the XMM registers at CPL 0")
    if state.mxcsr & checks.MXCSR_MM:
        return Unsupported("MXCSR.MM (AMD misaligned SSE mode) changes the alignment rules")
    destination = _common(insn, state, 16, 512)
    if not isinstance(destination, MemoryOperand):
        return destination
    image = legacy_image(state, insn.iced.code == C.FXSAVE64_M512BYTE)
    if isinstance(image, Unsupported):
        return image
    length = 416 if state.bitness == 64 else 288
    return StoreEffect(
        writes=(MemoryWrite(destination.linear, bytes(image[:length])),),
        rip=checks.next_rip(insn, state),
        rflags=checks.rflags_after(state),
    )


def emulate_xsave(insn: Instruction, state: CpuState, read: Callable[[int, int], bytes]) -> EmulationResult:
    problem = checks.xsave_available(state)
    if problem is not None:
        return problem
    assert state.xcr0 is not None
    kind, wide = _XSAVE_KIND[insn.iced.code]
    rfbm = state.xcr0 & ((state.rdx & 0xFFFF_FFFF) << 32 | (state.rax & 0xFFFF_FFFF))
    if rfbm & ~0x7:
        return Unsupported(f"requested state components {rfbm & ~0x7:#x} beyond x87/SSE/AVX")
    if state.xinuse is None:
        return Unsupported("XINUSE (the XSTATE_BV of KVM's XSAVE region) is not known")
    if rfbm & 0x4 and state.ymm_high is None:
        return Unsupported("the AVX upper halves are not known")
    if state.mxcsr & checks.MXCSR_MM:
        return Unsupported("MXCSR.MM (AMD misaligned SSE mode) is set")
    destination = _common(insn, state, 64, 832 if rfbm & 0x4 else 576)
    if not isinstance(destination, MemoryOperand):
        return destination
    base = destination.linear
    legacy = legacy_image(state, wide, x87=bool(rfbm & 0x1), sse=bool(rfbm & 0x6))
    if isinstance(legacy, Unsupported):
        return legacy
    image = bytearray(832)
    image[:416] = legacy
    if rfbm & 0x4:
        assert state.ymm_high is not None
        image[XSAVE_AVX:] = b"".join(state.ymm_high)

    in_use = state.xinuse & 0x7
    if kind == "xsavec" and state.mxcsr != MXCSR_INIT:
        in_use |= 0x2
    saved = rfbm if kind == "xsave" else rfbm & in_use
    ranges: list[tuple[int, int]] = []
    if saved & 0x1:
        ranges.extend(X87_RANGES)
    if (kind != "xsavec" and rfbm & 0x6) or (kind == "xsavec" and saved & 0x2):
        ranges.append(MXCSR_RANGE)
    long_mode = state.bitness == 64
    if saved & 0x2:
        ranges.append(XMM_RANGE if long_mode else XMM_RANGE_LEGACY)
    if saved & 0x4:
        ranges.append(AVX_RANGE if long_mode else AVX_RANGE_LEGACY)

    if kind == "xsavec":
        image[512:520] = (in_use & rfbm).to_bytes(8, "little")
        image[520:528] = (rfbm | 1 << 63).to_bytes(8, "little")
        ranges.append(HEADER_BV_COMP)
    else:
        old = int.from_bytes(read(base + XSAVE_HEADER, 8), "little")
        image[512:520] = ((old & ~rfbm) | (in_use & rfbm)).to_bytes(8, "little")
        ranges.append(HEADER_BV)
    return StoreEffect(
        writes=_merge(image, base, ranges),
        rip=checks.next_rip(insn, state),
        rflags=checks.rflags_after(state),
    )
