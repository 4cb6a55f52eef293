"""What an emulated store comes to: the effect to apply, an exception to raise, or a refusal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

VECTOR_UD: Final = 6
VECTOR_NM: Final = 7
VECTOR_SS: Final = 12
VECTOR_GP: Final = 13


@dataclass(frozen=True, slots=True)
class MemoryWrite:
    """`data` written at linear address `linear` (one access; it may cross a page)."""

    linear: int
    data: bytes

    @property
    def end(self) -> int:
        return self.linear + len(self.data)


@dataclass(frozen=True, slots=True)
class X87Pointers:
    """What the SDM says a non-control x87 instruction records as the last instruction: FIP (the
    instruction's offset in CS, prefixes included), FCS, FDP (the memory operand's effective
    address), FDS and FOP (11 bits: the low 3 bits of the first opcode byte, then ModRM).
    Processors differ in which of these they keep outside unmasked exceptions (Intel stores FOP
    only in FOP compatibility mode; with CPUID.(7,0):EBX[6] FDP only on exceptions; AMD keeps them
    only with an exception pending): the engine applies those its CPU model keeps."""

    fip: int
    fcs: int
    fdp: int
    fds: int
    fop: int


@dataclass(frozen=True, slots=True)
class X87Update:
    """The x87 state after the instruction: status word (TOP, condition codes, sticky flags), the
    abridged tag byte, and the registers in stack order for the new TOP (a pop rotates them)."""

    fsw: int
    ftw: int
    st: tuple[bytes, ...]
    pointers: X87Pointers


@dataclass(frozen=True, slots=True)
class StoreEffect:
    """The instruction's whole effect: memory writes in the order the CPU makes them, new GPR
    values by name (64-bit, only those that change), the new RFLAGS (RF cleared, as after any
    completed instruction), the new x87 state if it changes, and the next RIP."""

    writes: tuple[MemoryWrite, ...]
    rip: int
    rflags: int
    gprs: Mapping[str, int] = field(default_factory=dict)
    x87: X87Update | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """The instruction raises an exception before it writes anything: deliver `vector` (with
    `error_code` where the vector has one) and leave RIP at the instruction."""

    vector: int
    error_code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Unsupported:
    """The emulation cannot say exactly what the CPU would do; the engine must fall back."""

    reason: str


EmulationResult = StoreEffect | Fault | Unsupported


def gp0(reason: str) -> Fault:
    return Fault(VECTOR_GP, 0, reason)


def ud(reason: str) -> Fault:
    return Fault(VECTOR_UD, None, reason)


def nm(reason: str) -> Fault:
    return Fault(VECTOR_NM, None, reason)
