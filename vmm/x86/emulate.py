"""`emulate_store`: the one entry point that picks the handler for a decoded store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from vmm.x86 import cmpxchg, sse, tables, x87, xsave
from vmm.x86.decode import Instruction
from vmm.x86.results import EmulationResult, Unsupported
from vmm.x86.state import CpuState

ReadMemory = Callable[[int, int], bytes]
_Handler = Callable[[Instruction, CpuState, ReadMemory], EmulationResult]


def _table() -> dict[int, _Handler]:
    table: dict[int, _Handler] = {}
    for codes, handler in (
        (sse.CODES, sse.emulate),
        (x87.CODES, x87.emulate),
        (cmpxchg.CODES, cmpxchg.emulate),
        (tables.CODES, tables.emulate),
        (xsave.FXSAVE_CODES, xsave.emulate_fxsave),
        (xsave.XSAVE_CODES, xsave.emulate_xsave),
    ):
        for code in codes:
            table[code] = handler
    return table


_HANDLERS: Final = _table()


def _no_memory(linear: int, size: int) -> bytes:
    raise LookupError(f"no read_memory callback for {size} bytes at {linear:#x}")


def is_covered(insn: Instruction) -> bool:
    """Whether `emulate_store` has a handler for this instruction's form at all."""
    return insn.iced.code in _HANDLERS


def emulate_store(insn: Instruction, state: CpuState, read_memory: ReadMemory = _no_memory) -> EmulationResult:
    """What `insn` does when executed in `state`: a `StoreEffect` (writes in CPU order, register
    changes, next RIP), a `Fault` to deliver instead, or `Unsupported` when the result could not be
    exact. `read_memory(linear, size)` serves the reads some stores make first (CMPXCHG8B/16B,
    the XSAVE header)."""
    handler = _HANDLERS.get(insn.iced.code)
    if handler is None:
        return Unsupported(f"{insn.mnemonic} is not an emulated store")
    return handler(insn, state, read_memory)
