"""Decoding one x86 instruction and emulating the stores KVM's instruction emulator cannot do.

Pure data in, data out: no KVM. `decode` gives the instruction and the linear address, size and
access of every memory operand; `emulate_store` gives exactly what a covered store writes and
changes, the exception it raises instead, or `Unsupported`.
"""

from vmm.x86.decode import Access, Instruction, MemoryOperand, decode
from vmm.x86.emulate import emulate_store, is_covered
from vmm.x86.results import (
    EmulationResult,
    Fault,
    MemoryWrite,
    StoreEffect,
    Unsupported,
    X87Pointers,
    X87Update,
)
from vmm.x86.state import CpuState, Segment, decoding_state

__all__ = [
    "Access",
    "CpuState",
    "EmulationResult",
    "Fault",
    "Instruction",
    "MemoryOperand",
    "MemoryWrite",
    "Segment",
    "StoreEffect",
    "Unsupported",
    "X87Pointers",
    "X87Update",
    "decode",
    "decoding_state",
    "emulate_store",
    "is_covered",
]
