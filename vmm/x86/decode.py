"""Decoding one x86 instruction with iced-x86, and the linear addresses of its memory operands.

iced-x86's Python binding reports every explicit and implicit memory access of an instruction
(`InstructionInfoFactory.info(...).used_memory()`: segment, base, index, scale, displacement,
size, access, address size) but does not expose the Rust crate's virtual-address callback, so the
addresses are computed here from those parts and the register state: base + index * scale +
displacement, wrapped to the address size, plus the segment base (only FS and GS have one in
64-bit mode). iced resolves RIP-relative operands to an absolute displacement from the decoder's
IP, and gives push/pop and string operations their implicit RSP/RSI/RDI operands.

The text is in Intel syntax (iced's `FormatterSyntax.INTEL`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import iced_x86 as iced

from vmm.x86.state import RFLAGS_DF, SEGMENT_NAMES, CpuState

_FACTORY: Final = iced.InstructionInfoFactory()
_FORMATTER: Final = iced.Formatter(iced.FormatterSyntax.INTEL)

_MNEMONIC_NAMES: Final[dict[int, str]] = {
    value: name.lower() for name, value in vars(iced.Mnemonic).items() if isinstance(value, int) and name.isupper()
}


def _gpr_table() -> dict[int, tuple[int, int]]:
    """iced register -> (GPR number, width in bytes) for the 16/32/64-bit GPRs."""
    table: dict[int, tuple[int, int]] = {}
    for first, width in ((iced.Register.AX, 2), (iced.Register.EAX, 4), (iced.Register.RAX, 8)):
        for number in range(16):
            table[first + number] = (number, width)
    return table


_GPRS: Final = _gpr_table()
_SEGMENT_INDEX: Final[dict[int, int]] = {iced.Register.ES + i: i for i in range(6)}
_SEGMENT_NAME: Final[dict[int, str]] = {iced.Register.ES + i: n for i, n in enumerate(SEGMENT_NAMES)}
_ADDRESS_MASK: Final[dict[int, int]] = {
    iced.CodeSize.CODE16: 0xFFFF,
    iced.CodeSize.CODE32: 0xFFFF_FFFF,
    iced.CodeSize.CODE64: 0xFFFF_FFFF_FFFF_FFFF,
}
_ADDRESS_BITS: Final[dict[int, int]] = {iced.CodeSize.CODE16: 16, iced.CodeSize.CODE32: 32, iced.CodeSize.CODE64: 64}
_U64: Final = 0xFFFF_FFFF_FFFF_FFFF
_XSAVE_FAMILY: Final = frozenset(
    {
        iced.Code.XSAVE_MEM,
        iced.Code.XSAVE64_MEM,
        iced.Code.XSAVEOPT_MEM,
        iced.Code.XSAVEOPT64_MEM,
        iced.Code.XSAVEC_MEM,
        iced.Code.XSAVEC64_MEM,
        iced.Code.XSAVES_MEM,
        iced.Code.XSAVES64_MEM,
    }
)
_XSAVE_IMAGE_SIZES: Final = frozenset({iced.MemorySize.XSAVE, iced.MemorySize.XSAVE64})


class Access(enum.Enum):
    READ = "read"
    WRITE = "write"
    READ_WRITE = "read-write"


_ACCESS: Final[dict[int, tuple[Access, bool]]] = {
    iced.OpAccess.READ: (Access.READ, False),
    iced.OpAccess.COND_READ: (Access.READ, True),
    iced.OpAccess.WRITE: (Access.WRITE, False),
    iced.OpAccess.COND_WRITE: (Access.WRITE, True),
    iced.OpAccess.READ_WRITE: (Access.READ_WRITE, False),
    # cmpxchg8b/16b: the CPU writes either way (the old value back on failure), so not conditional.
    iced.OpAccess.READ_COND_WRITE: (Access.READ_WRITE, False),
}


@dataclass(frozen=True, slots=True)
class MemoryOperand:
    """One memory access of the instruction.

    `linear` is the first element's linear address and `effective` its offset in the segment.
    `size` is bytes per element; string instructions with a REP prefix repeat `count` times
    (RCX masked to the address size) stepping `step` bytes (negative with RFLAGS.DF); everything
    else has count 1. `exact_size` is False where the size depends on state the decoder does not
    model (XSAVE with components above AVX): `size` is then an upper bound. `conditional` marks
    accesses that may not happen (a REP with RCX = 0, a CMOVcc).
    """

    segment: str
    effective: int
    linear: int
    size: int
    access: Access
    count: int = 1
    step: int = 0
    conditional: bool = False
    exact_size: bool = True
    address_bits: int = 64

    @property
    def span(self) -> tuple[int, int]:
        """[start, end) of linear addresses the operand may touch, over all repetitions."""
        if self.count == 0:
            return (self.linear, self.linear)
        last = self.linear + self.step * (self.count - 1)
        lo = min(self.linear, last)
        return (lo, max(self.linear, last) + self.size)


@dataclass(frozen=True, slots=True)
class Instruction:
    """A decoded instruction. `iced` is the iced-x86 instruction the emulation works from."""

    bytes: bytes
    length: int
    mnemonic: str
    text: str
    memory: tuple[MemoryOperand, ...]
    bitness: int
    iced: iced.Instruction

    def writes_memory(self) -> bool:
        return any(m.access is not Access.READ for m in self.memory)


def decode(code: bytes, state: CpuState) -> Instruction | None:
    """Decode the instruction at the start of `code` (up to 15 bytes) for `state`'s mode; None if
    the bytes do not form a valid instruction (or stop before its end)."""
    decoder = iced.Decoder(state.bitness, code, ip=state.rip)
    insn = decoder.decode()
    if insn.code == iced.Code.INVALID:
        return None
    memory = tuple(_memory_operands(insn, state))
    return Instruction(
        bytes=bytes(code[: insn.len]),
        length=insn.len,
        mnemonic=_MNEMONIC_NAMES.get(insn.mnemonic, "?"),
        text=_FORMATTER.format(insn),
        memory=memory,
        bitness=state.bitness,
        iced=insn,
    )


def register_value(state: CpuState, register: int) -> int | None:
    """The value of a 16/32/64-bit GPR (iced register number), or None for anything else."""
    entry = _GPRS.get(register)
    if entry is None:
        return None
    number, width = entry
    return state.gprs[number] & ((1 << (8 * width)) - 1)


def segment_base(state: CpuState, segment: int) -> int:
    """Segment base used for linear addresses: in 64-bit mode only FS and GS have one."""
    index = _SEGMENT_INDEX.get(segment)
    if index is None:
        return 0
    if state.bitness == 64 and index < 4:
        return 0
    return state.segments[index].base


def _memory_operands(insn: iced.Instruction, state: CpuState) -> list[MemoryOperand]:
    out: list[MemoryOperand] = []
    rep = insn.has_rep_prefix or insn.has_repne_prefix
    string = insn.is_string_instruction
    for used in _FACTORY.info(insn).used_memory():
        access = _ACCESS.get(used.access)
        if access is None:  # NO_MEM_ACCESS (prefetch, clflush, lea-like): touches no data
            continue
        mask = _ADDRESS_MASK[used.address_size]
        ea = used.displacement
        for reg, scale in ((used.base, 1), (used.index, used.scale)):
            if reg == iced.Register.NONE:
                continue
            value = register_value(state, reg)
            if value is None:  # RIP-relative: iced already folded RIP into the displacement
                continue
            ea += value * scale
        if insn.is_stack_instruction and state.bitness != 64:
            # The stack's address size comes from SS.B, not from CS.D.
            mask = 0xFFFF_FFFF if state.ss.db else 0xFFFF
        ea &= mask
        linear = (segment_base(state, used.segment) + ea) & (_U64 if state.bitness == 64 else 0xFFFF_FFFF)
        size, exact = _operand_size(insn, used, state)
        count, step = 1, 0
        if string:
            step = -size if state.rflags & RFLAGS_DF else size
            if rep:
                count = state.rcx & mask
        out.append(
            MemoryOperand(
                segment=_SEGMENT_NAME.get(used.segment, ""),
                effective=ea,
                linear=linear,
                size=size,
                access=access[0],
                count=count,
                step=step,
                conditional=access[1],
                exact_size=exact,
                address_bits=_ADDRESS_BITS[used.address_size],
            )
        )
    return out


def _operand_size(insn: iced.Instruction, used: iced.UsedMemory, state: CpuState) -> tuple[int, bool]:
    if insn.code in _XSAVE_FAMILY or used.memory_size in _XSAVE_IMAGE_SIZES:
        return xsave_extent(insn, state)
    size = _memory_size_bytes(used.memory_size)
    if size == 0:  # a REP string operand is reported with an unknown size: use the element's
        size = _memory_size_bytes(insn.memory_size)
    return size, True


_SIZES: Final[dict[int, int]] = {}


def _memory_size_bytes(memory_size: iced.MemorySize_) -> int:
    size = _SIZES.get(memory_size)
    if size is None:
        size = _SIZES[memory_size] = iced.MemorySizeInfo(memory_size).size
    return size


def xsave_extent(insn: iced.Instruction, state: CpuState) -> tuple[int, bool]:
    """Bytes an XSAVE-family image spans, and whether that is exact. Exact for requested
    components within x87/SSE/AVX (legacy region, header, AVX at 576); otherwise the size of
    KVM's standard-format region is given as a bound."""
    if state.xcr0 is None:
        return 4096, False
    rfbm = state.xcr0 & ((state.rdx & 0xFFFF_FFFF) << 32 | (state.rax & 0xFFFF_FFFF))
    if rfbm & ~0x7:
        return 4096, False
    return (576 + 256 if rfbm & 0x4 else 576), True
