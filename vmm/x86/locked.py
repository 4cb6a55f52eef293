"""Locked read-modify-writes and `xchg` with memory, carried out again on the memory's current value.

KVM emulates a locked instruction on a page it may not write (a read-only memslot) by reading the
page, computing, and handing the write to the monitor as an MMIO exit; by then the instruction has
retired (RIP, RFLAGS and its register results are written). Another vCPU's write that lands
between KVM's read and the monitor's handling of the exit is lost, and the registers tell of a
value the memory no longer holds. `redo` makes the instruction atomic at the moment the monitor
handles its write: from what the exit carries (the bytes KVM meant to write), the registers as
KVM left them and the memory's current value, it gives the bytes to write and the registers the
instruction leaves, as if it had run then.

What is lost in KVM's result, and why each kind can still be redone exactly:
- add, sub, and, or, xor, inc, dec, neg, not, bts, btr, btc: the source (a register the
  instruction does not change, or an immediate) is intact, so the result and flags follow from
  the current value alone.
- xadd: the source register now holds KVM's old value and the write their sum, so the original
  source is their difference.
- xchg: the write is the original register.
- cmpxchg, cmpxchg8b: with ZF set, the accumulator still holds the value KVM compared against;
  with ZF clear the instruction failed on what KVM read and wrote that value back, which changes
  nothing: it is complete as it stands (atomic at KVM's read), and its write cycle writes the
  current value back instead of KVM's (a write of what is there, seen by SPP as the CPU's is).
- adc and sbb: KVM overwrote the carry they read (CF before the instruction). Given the value
  KVM read, the carry is the one of 0 and 1 that makes that value plus (minus) the source give
  KVM's write (`explains`); the caller finds the value among those the memory held since the
  vCPU's previous trapped write (vmm.spp.atomic) and passes the carry in.

Pure: plain ints and dicts in and out, no KVM.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import iced_x86 as iced

from vmm.x86.state import GPR_NAMES

CF: Final = 1 << 0
PF: Final = 1 << 2
AF: Final = 1 << 4
ZF: Final = 1 << 6
SF: Final = 1 << 7
OF: Final = 1 << 11
ARITH: Final = CF | PF | AF | ZF | SF | OF


class Kind(enum.Enum):
    ADD = "add"
    SUB = "sub"
    AND = "and"
    OR = "or"
    XOR = "xor"
    ADC = "adc"
    SBB = "sbb"
    INC = "inc"
    DEC = "dec"
    NEG = "neg"
    NOT = "not"
    BTS = "bts"
    BTR = "btr"
    BTC = "btc"
    XADD = "xadd"
    XCHG = "xchg"
    CMPXCHG = "cmpxchg"
    CMPXCHG8B = "cmpxchg8b"


_KINDS: Final[dict[int, Kind]] = {getattr(iced.Mnemonic, k.name): k for k in Kind}
_BIT_TESTS: Final = frozenset({Kind.BTS, Kind.BTR, Kind.BTC})
_SOURCED: Final = frozenset(
    {Kind.ADD, Kind.SUB, Kind.AND, Kind.OR, Kind.XOR, Kind.ADC, Kind.SBB, Kind.XADD, Kind.XCHG, Kind.CMPXCHG}
) | _BIT_TESTS


@dataclass(frozen=True, slots=True)
class Register:
    """A general register operand: GPR number, width in bytes, and bit offset (8 for AH-BH)."""

    number: int
    width: int
    shift: int = 0

    def read(self, gprs: dict[str, int]) -> int:
        return (gprs[GPR_NAMES[self.number]] >> self.shift) & ((1 << (8 * self.width)) - 1)

    def write(self, gprs: dict[str, int], value: int, bitness: int) -> int:
        """The full 64-bit register after writing `value` into this operand."""
        old = gprs[GPR_NAMES[self.number]]
        mask = (1 << (8 * self.width)) - 1
        if self.width == 4 and bitness == 64:  # a 32-bit write zero-extends in 64-bit mode
            return value & mask
        if self.width == 8:
            return value & mask
        return (old & ~(mask << self.shift)) | ((value & mask) << self.shift)


def register_operand(register: int) -> Register | None:
    """The Register for an iced GPR operand (8-bit ones included), or None."""
    R = iced.Register
    if R.AL <= register <= R.BL:
        return Register(register - R.AL, 1)
    if R.AH <= register <= R.BH:
        return Register(register - R.AH, 1, 8)
    if R.SPL <= register <= R.R15L:
        return Register(register - R.SPL + 4, 1)
    for first, width in ((R.AX, 2), (R.EAX, 4), (R.RAX, 8)):
        if first <= register < first + 16:
            return Register(register - first, width)
    return None


@dataclass(frozen=True, slots=True)
class LockedOp:
    """An atomic read-modify-write of `size` bytes of memory, as decoded."""

    kind: Kind
    size: int
    bitness: int
    source: Register | None = None  # the register operand, where there is one
    immediate: int | None = None  # the immediate source, where there is one

    @property
    def needs_carry(self) -> bool:
        """Whether `redo` needs the carry-in (CF before the instruction), which KVM's exit lost."""
        return self.kind in (Kind.ADC, Kind.SBB)


def classify(insn: iced.Instruction, bitness: int, *, locked_only: bool = True) -> LockedOp | None:
    """The LockedOp for a lock-prefixed read-modify-write with a memory destination, or for `xchg`
    with memory (locked whether prefixed or not); None for anything else. With `locked_only`
    False, the same read-modify-writes without the prefix too."""
    kind = _KINDS.get(insn.mnemonic)
    if kind is None or insn.op_count == 0:
        return None
    memory_at = next((i for i in range(insn.op_count) if insn.op_kind(i) == iced.OpKind.MEMORY), None)
    if memory_at is None:
        return None
    if kind is not Kind.XCHG and ((locked_only and not insn.has_lock_prefix) or memory_at != 0):
        return None
    size = iced.MemorySizeInfo(insn.memory_size).size
    if kind is Kind.CMPXCHG8B:
        if size != 8:  # cmpxchg16b: KVM does not emulate it; the engine's store emulation does
            return None
        return LockedOp(kind, size, bitness)
    if size not in (1, 2, 4, 8):
        return None
    if kind not in _SOURCED:
        return LockedOp(kind, size, bitness)
    other = 1 - memory_at if insn.op_count == 2 else None
    if other is None:
        return None
    op_kind = insn.op_kind(other)
    if op_kind == iced.OpKind.REGISTER:
        register = register_operand(insn.op_register(other))
        return None if register is None else LockedOp(kind, size, bitness, source=register)
    if kind in (Kind.XADD, Kind.XCHG, Kind.CMPXCHG):
        return None
    return LockedOp(kind, size, bitness, immediate=insn.immediate(other))


@dataclass(frozen=True, slots=True)
class Redone:
    """What the instruction does when run on the current value: `write` is the operand's value
    after it (the current value again where it only makes a write cycle), `gprs` the registers
    it changes, `rflags` the flags after it."""

    write: int
    gprs: dict[str, int]
    rflags: int


def redo(op: LockedOp, current: int, written: int, gprs: dict[str, int], rflags: int, carry: int = 0) -> Redone:
    """The instruction carried out again on `current`, the memory's value now. `written` is the
    value KVM's exit wanted to write, `gprs` (GPR name -> value) and `rflags` the registers as
    KVM left them; `carry` is adc's and sbb's carry-in (CF before the instruction, 0 or 1). For
    bts/btr/btc KVM has already moved the address to the word that holds the bit; the bit within
    it is the offset modulo the operand width."""
    bits = 8 * op.size
    mask = (1 << bits) - 1
    kind = op.kind
    src = _source(op, gprs, mask)
    if kind is Kind.ADC:
        return Redone((current + src + carry) & mask, {}, _add_flags(rflags, current, src, bits, carry))
    if kind is Kind.SBB:
        return Redone((current - src - carry) & mask, {}, _sub_flags(rflags, current, src, bits, carry))
    if kind is Kind.ADD:
        return Redone((current + src) & mask, {}, _add_flags(rflags, current, src, bits))
    if kind is Kind.SUB:
        return Redone((current - src) & mask, {}, _sub_flags(rflags, current, src, bits))
    if kind in (Kind.AND, Kind.OR, Kind.XOR):
        result = current & src if kind is Kind.AND else current | src if kind is Kind.OR else current ^ src
        return Redone(result, {}, _logic_flags(rflags, result, bits))
    if kind is Kind.INC:
        return Redone((current + 1) & mask, {}, (_add_flags(rflags, current, 1, bits) & ~CF) | (rflags & CF))
    if kind is Kind.DEC:
        return Redone((current - 1) & mask, {}, (_sub_flags(rflags, current, 1, bits) & ~CF) | (rflags & CF))
    if kind is Kind.NEG:
        return Redone((-current) & mask, {}, _sub_flags(rflags, 0, current, bits))
    if kind is Kind.NOT:
        return Redone(~current & mask, {}, rflags)
    if kind in _BIT_TESTS:
        one = 1 << (src % bits)
        new = current | one if kind is Kind.BTS else current & ~one if kind is Kind.BTR else current ^ one
        return Redone(new, {}, (rflags & ~CF) | (CF if current & one else 0))
    if kind is Kind.XADD:
        assert op.source is not None
        original = (written - op.source.read(gprs)) & mask
        register = {GPR_NAMES[op.source.number]: op.source.write(gprs, current, op.bitness)}
        return Redone((current + original) & mask, register, _add_flags(rflags, current, original, bits))
    if kind is Kind.XCHG:
        assert op.source is not None
        return Redone(written, {GPR_NAMES[op.source.number]: op.source.write(gprs, current, op.bitness)}, rflags)
    if kind is Kind.CMPXCHG:
        accumulator = Register(0, op.size)
        if not rflags & ZF:
            return Redone(current, {}, rflags)  # failed on KVM's read, which is where it is atomic
        expected = accumulator.read(gprs)
        flags = _sub_flags(rflags, expected, current, bits)
        if current == expected:
            return Redone(src, {}, flags)
        return Redone(current, {"rax": accumulator.write(gprs, current, op.bitness)}, flags)
    if kind is Kind.CMPXCHG8B:
        if not rflags & ZF:
            return Redone(current, {}, rflags)
        expected = (gprs["rdx"] & 0xFFFF_FFFF) << 32 | (gprs["rax"] & 0xFFFF_FFFF)
        if current == expected:
            return Redone((gprs["rcx"] & 0xFFFF_FFFF) << 32 | (gprs["rbx"] & 0xFFFF_FFFF), {}, rflags)
        low, high = current & 0xFFFF_FFFF, current >> 32
        if op.bitness != 64:
            low |= gprs["rax"] & ~0xFFFF_FFFF
            high |= gprs["rdx"] & ~0xFFFF_FFFF
        return Redone(current, {"rax": low, "rdx": high}, rflags & ~ZF)
    raise AssertionError(f"no redo for {kind}")


def explains(op: LockedOp, stale: int, written: int, gprs: dict[str, int], rflags: int, carry: int = 0) -> bool:
    """Whether the instruction, run on `stale` (with carry-in `carry`), gives exactly what KVM's
    exit shows: the write, the registers it changes and the arithmetic flags. Given the value KVM
    really read this holds for exactly one carry, so it tells adc's and sbb's lost carry-in; and
    an instruction that explains none of the values the memory held is not the one that wrote."""
    done = redo(op, stale, written, gprs, rflags, carry)
    if op.kind in (Kind.CMPXCHG, Kind.CMPXCHG8B) and not rflags & ZF:
        return stale == written  # failed: KVM wrote back what it read
    return (
        done.write == written
        and (done.rflags & ARITH) == (rflags & ARITH)
        and all(gprs[name] == value for name, value in done.gprs.items())
    )


def _source(op: LockedOp, gprs: dict[str, int], mask: int) -> int:
    if op.source is not None:
        return op.source.read(gprs)
    return (op.immediate or 0) & mask


def _parity(value: int) -> int:
    return PF if bin(value & 0xFF).count("1") % 2 == 0 else 0


def _result_flags(result: int, bits: int) -> int:
    return _parity(result) | (ZF if result == 0 else 0) | (SF if result >> (bits - 1) & 1 else 0)


def _add_flags(rflags: int, a: int, b: int, bits: int, carry: int = 0) -> int:
    mask = (1 << bits) - 1
    full = a + b + carry
    r = full & mask
    flags = _result_flags(r, bits) | (CF if full > mask else 0) | ((a ^ b ^ r) & AF)
    flags |= OF if ((a ^ r) & (b ^ r)) >> (bits - 1) & 1 else 0
    return (rflags & ~ARITH) | flags


def _sub_flags(rflags: int, a: int, b: int, bits: int, borrow: int = 0) -> int:
    mask = (1 << bits) - 1
    r = (a - b - borrow) & mask
    flags = _result_flags(r, bits) | (CF if a < b + borrow else 0) | ((a ^ b ^ r) & AF)
    flags |= OF if ((a ^ b) & (a ^ r)) >> (bits - 1) & 1 else 0
    return (rflags & ~ARITH) | flags


def _logic_flags(rflags: int, result: int, bits: int) -> int:
    # CF and OF clear; AF is undefined and kept as KVM left it
    return (rflags & ~(ARITH & ~AF)) | _result_flags(result, bits)
