"""x87 stores: FST/FSTP (m32, m64, m80), FIST/FISTP/FISTTP (m16, m32, m64), FNSTCW, FNSTSW m16.

A waiting instruction with an unmasked exception pending would raise #MF first; a conversion
that raises an unmasked exception would fault (and, for invalid operands, not store): both are
refused, since the engine does not deliver x87 faults. Everything masked is done as the SDM
says, including the sticky flags, C1, the stack-underflow response and the pop. C0, C2 and C3,
which the SDM leaves undefined for these instructions, are left as they were (what the hardware
compared against does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import iced_x86 as iced

from vmm.x86 import checks
from vmm.x86.decode import Instruction
from vmm.x86.float80 import (
    DOUBLE,
    FSW_C1,
    FSW_ES,
    FSW_EXCEPTIONS,
    FSW_IE,
    FSW_SF,
    FSW_UE,
    INDEFINITE80,
    RC_ZERO,
    SINGLE,
    Conversion,
    FloatFormat,
    to_float,
    to_integer,
)
from vmm.x86.results import EmulationResult, MemoryWrite, StoreEffect, Unsupported, X87Pointers, X87Update
from vmm.x86.state import CpuState

C = iced.Code


@dataclass(frozen=True, slots=True)
class _Store:
    kind: str  # "float", "ext", "int", "trunc"
    size: int
    pop: bool
    fmt: FloatFormat | None = None


_STORES: Final[dict[int, _Store]] = {
    C.FST_M32FP: _Store("float", 4, False, SINGLE),
    C.FSTP_M32FP: _Store("float", 4, True, SINGLE),
    C.FST_M64FP: _Store("float", 8, False, DOUBLE),
    C.FSTP_M64FP: _Store("float", 8, True, DOUBLE),
    C.FSTP_M80FP: _Store("ext", 10, True),
    C.FIST_M16INT: _Store("int", 2, False),
    C.FIST_M32INT: _Store("int", 4, False),
    C.FISTP_M16INT: _Store("int", 2, True),
    C.FISTP_M32INT: _Store("int", 4, True),
    C.FISTP_M64INT: _Store("int", 8, True),
    C.FISTTP_M16INT: _Store("trunc", 2, True),
    C.FISTTP_M32INT: _Store("trunc", 4, True),
    C.FISTTP_M64INT: _Store("trunc", 8, True),
}
# Control-word and status-word stores; the FSTxx codes are iced's forms with the FWAIT folded in.
_CONTROL: Final[dict[int, tuple[str, bool]]] = {
    C.FNSTCW_M2BYTE: ("fcw", False),
    C.FSTCW_M2BYTE: ("fcw", True),
    C.FNSTSW_M2BYTE: ("fsw", False),
    C.FSTSW_M2BYTE: ("fsw", True),
}

CODES: Final = frozenset(_STORES) | frozenset(_CONTROL)

_PREFIXES: Final = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3})


def _unmasked_pending(state: CpuState) -> bool:
    return bool(state.fsw & FSW_ES) or bool(state.fsw & FSW_EXCEPTIONS & ~state.fcw & 0x3F)


def x87_opcode(insn: Instruction) -> int:
    """FOP: bits 2:0 of the D8-DF opcode byte and the ModRM byte, after any prefixes."""
    code = insn.bytes
    i = 0
    while i < len(code) and (code[i] in _PREFIXES or (insn.bitness == 64 and 0x40 <= code[i] <= 0x4F)):
        i += 1
    return (code[i] & 7) << 8 | code[i + 1]


def _convert(store: _Store, raw: bytes, rc: int) -> Conversion:
    if store.kind == "ext":
        return Conversion(raw)
    if store.kind == "float":
        assert store.fmt is not None
        return to_float(raw, store.fmt, rc)
    return to_integer(raw, store.size * 8, RC_ZERO if store.kind == "trunc" else rc)


def _indefinite(store: _Store) -> bytes:
    if store.kind == "ext":
        return INDEFINITE80
    if store.fmt is not None:
        return store.fmt.indefinite()
    return (1 << (store.size * 8 - 1)).to_bytes(store.size, "little")


def emulate(insn: Instruction, state: CpuState, _read: Callable[[int, int], bytes]) -> EmulationResult:
    destination = checks.memory_destination(insn)
    if isinstance(destination, Unsupported):
        return destination
    problem = checks.x87_available(state)
    if problem is not None:
        return problem
    code = insn.iced.code
    control = _CONTROL.get(code)
    waits = control[1] if control is not None else True
    if waits and _unmasked_pending(state):
        return Unsupported("an unmasked x87 exception is pending: the instruction raises #MF")
    store = _STORES.get(code)
    size = 2 if store is None else store.size
    problem = checks.check_destination(state, destination, size)
    if problem is None:
        problem = checks.refuse_trap(state)
    if problem is not None:
        return problem
    rip = checks.next_rip(insn, state)
    rflags = checks.rflags_after(state)
    if control is not None:
        value = state.fcw if control[0] == "fcw" else state.fsw
        return StoreEffect((MemoryWrite(destination.linear, value.to_bytes(2, "little")),), rip, rflags)
    assert store is not None

    masks = state.fcw & 0x3F
    if not state.st_tag_valid(0):  # stack underflow: #IS
        conversion = Conversion(_indefinite(store), FSW_IE | FSW_SF)
    else:
        conversion = _convert(store, state.st[0], (state.fcw >> 10) & 3)
    raised = conversion.flags & FSW_EXCEPTIONS
    if raised & ~masks or (conversion.tiny and not masks & FSW_UE):
        return Unsupported(f"{insn.mnemonic} raises an unmasked x87 exception (flags {raised:#x})")

    fsw = (state.fsw | conversion.flags) & ~FSW_C1
    if conversion.c1:
        fsw |= FSW_C1
    ftw = state.ftw
    st = state.st
    if store.pop:
        top = state.x87_top
        ftw &= ~(1 << top)
        fsw = (fsw & ~(7 << 11)) | ((top + 1) & 7) << 11
        st = (*st[1:], st[0])
    cs_selector = state.cs.selector
    pointers = X87Pointers(
        fip=state.rip,
        fcs=cs_selector,
        fdp=destination.effective,
        fds=getattr(state, destination.segment).selector,
        fop=x87_opcode(insn),
    )
    return StoreEffect(
        writes=(MemoryWrite(destination.linear, conversion.data),),
        rip=rip,
        rflags=rflags,
        x87=X87Update(fsw=fsw, ftw=ftw, st=st, pointers=pointers),
    )
