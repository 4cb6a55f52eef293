"""CMPXCHG8B and CMPXCHG16B, with or without LOCK.

The destination is always written: with ECX:EBX (RCX:RBX) when it equals EDX:EAX (RDX:RAX),
else with its own old value, which is also loaded into EDX:EAX (RDX:RAX). Only ZF changes in
RFLAGS. CMPXCHG16B needs a 16-byte aligned operand (#GP(0)). The comparison reads memory through
the engine's callback; making read and write one atomic step against other vCPUs is the
engine's part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import iced_x86 as iced

from vmm.x86 import checks
from vmm.x86.decode import Instruction
from vmm.x86.results import EmulationResult, MemoryWrite, StoreEffect, Unsupported
from vmm.x86.state import CpuState

CODES: Final = frozenset({iced.Code.CMPXCHG8B_M64, iced.Code.CMPXCHG16B_M128})
RFLAGS_ZF: Final = 1 << 6


def emulate(insn: Instruction, state: CpuState, read: Callable[[int, int], bytes]) -> EmulationResult:
    wide = insn.iced.code == iced.Code.CMPXCHG16B_M128
    half = 8 if wide else 4
    destination = checks.memory_destination(insn)
    if isinstance(destination, Unsupported):
        return destination
    problem = checks.check_destination(state, destination, 2 * half, 16 if wide else 0)
    if problem is None:
        problem = checks.refuse_trap(state)
    if problem is not None:
        return problem
    mask = (1 << (8 * half)) - 1
    old = read(destination.linear, 2 * half)
    if len(old) != 2 * half:
        raise ValueError(f"read_memory returned {len(old)} bytes, wanted {2 * half}")
    expected = (state.rdx & mask) << (8 * half) | (state.rax & mask)
    current = int.from_bytes(old, "little")
    rflags = checks.rflags_after(state)
    gprs: dict[str, int] = {}
    if current == expected:
        new = ((state.rcx & mask) << (8 * half) | (state.rbx & mask)).to_bytes(2 * half, "little")
        rflags |= RFLAGS_ZF
    else:
        new = old
        rflags &= ~RFLAGS_ZF
        low, high = current & mask, current >> (8 * half)
        if wide or state.bitness == 64:  # a 32-bit register write zero-extends in 64-bit mode
            gprs = {"rax": low, "rdx": high}
        else:
            gprs = {"rax": (state.rax & ~mask) | low, "rdx": (state.rdx & ~mask) | high}
    return StoreEffect(
        writes=(MemoryWrite(destination.linear, new),),
        rip=checks.next_rip(insn, state),
        rflags=rflags,
        gprs=gprs,
    )
