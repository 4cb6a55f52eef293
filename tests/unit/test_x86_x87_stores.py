"""x87 stores: conversions checked against exact rational arithmetic (hypothesis), and every
store form run on this CPU under all four rounding modes on values from each class (zeros,
denormals, pseudo-denormals, rounding ties, overflow and underflow edges, integer range edges,
infinities, NaNs, unsupported encodings), compared byte for byte with FSW and the tag byte."""

from __future__ import annotations

import math
import random
import struct
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit import x86_cpu
from vmm.x86 import CpuState, Fault, StoreEffect, Unsupported, decode, emulate_store
from vmm.x86.float80 import (
    DOUBLE,
    FSW_IE,
    FSW_OE,
    FSW_PE,
    FSW_UE,
    RC_DOWN,
    RC_NEAREST,
    RC_UP,
    RC_ZERO,
    SINGLE,
    FloatFormat,
    exact_value,
    to_float,
    to_integer,
)
from vmm.x86.state import CR0_TS

OPS = [
    "fsts", "fstps", "fstl", "fstpl", "fstpt", "fists", "fistps", "fistl", "fistpl", "fistpll",
    "fisttps", "fisttpl", "fisttpll", "fnstcw", "fnstsw",
]  # fmt: skip


def ext(sign: int, exponent: int, significand: int) -> bytes:
    return (sign << 79 | exponent << 64 | significand).to_bytes(10, "little")


def from_fraction(value: Fraction) -> bytes | None:
    """A nonzero value as a normal 80-bit encoding; None if it needs more than 64 bits."""
    sign = int(value < 0)
    magnitude = abs(value)
    top = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    while Fraction(2) ** top > magnitude:
        top -= 1
    while Fraction(2) ** (top + 1) <= magnitude:
        top += 1
    significand = magnitude / Fraction(2) ** (top - 63)
    if significand.denominator != 1:
        return None
    return ext(sign, top + 16383, int(significand))


def _edge_values(rng: random.Random) -> list[bytes]:
    values = [
        ext(0, 0, 0), ext(1, 0, 0),  # zeros
        ext(0, 0, 1), ext(1, 0, 0x7FFF_FFFF_FFFF_FFFF),  # denormals
        ext(0, 0, 1 << 63 | 5), ext(1, 0, 1 << 63),  # pseudo-denormals
        ext(0, 0x7FFF, 1 << 63), ext(1, 0x7FFF, 1 << 63),  # infinities
        ext(0, 0x7FFF, 0xC000_0000_0000_0001), ext(1, 0x7FFF, 0xFFFF_FFFF_FFFF_FFFF),  # QNaNs
        ext(0, 0x7FFF, 0x8000_0000_0000_0001), ext(1, 0x7FFF, 0xA000_0000_0000_0800),  # SNaNs
        ext(0, 0x7FFF, 0x4000_0000_0000_0000), ext(0, 0x7FFF, 0),  # pseudo-NaN, pseudo-infinity
        ext(0, 0x3FFF, 0x4000_0000_0000_0000), ext(1, 0x1234, 1),  # unnormals
    ]  # fmt: skip
    for fmt in (SINGLE, DOUBLE):
        p = fmt.fraction_bits + 1
        emax = fmt.bias
        emin = 1 - fmt.bias
        for e in (emax, emax + 1, emin, emin - 1, emin - p, emin - p - 1, emin - p + 1):
            base = 16383 + e
            for sig in (
                1 << 63,
                (1 << 64) - 1,
                ((1 << p) - 1) << (64 - p),
                1 << 63 | 1 << (63 - p),
                1 << 63 | 1 << (63 - p) | 1,
                1 << 63 | 3 << (63 - p),
                (1 << 64) - (1 << (63 - p)),
            ):
                values.append(ext(rng.randrange(2), base, sig))
    for bits in (16, 32, 64):
        for edge in (1 << (bits - 1), (1 << (bits - 1)) - 1):
            for delta in (Fraction(0), Fraction(1, 2), Fraction(-1, 2), Fraction(1, 4), Fraction(3, 4), Fraction(1)):
                for sign in (1, -1):
                    value = sign * (edge + delta)
                    encoded = from_fraction(value)
                    if encoded is not None:
                        values.append(encoded)
    for half in (Fraction(1, 2), Fraction(3, 2), Fraction(5, 2), Fraction(-5, 2), Fraction(-1, 2)):
        encoded = from_fraction(half)
        assert encoded is not None
        values.append(encoded)
    for _ in range(120):
        values.append(ext(rng.randrange(2), rng.randrange(0x3F00, 0x4100), rng.randrange(1 << 63, 1 << 64)))
        values.append(ext(rng.randrange(2), rng.randrange(1, 0x7FFF), rng.randrange(1 << 63, 1 << 64)))
    return values


def _state(fcw: int, fsw: int, ftw: int, st0: bytes, **changes: object) -> CpuState:
    values: dict[str, object] = {
        "rip": 0x40_2000,
        "rdi": x86_cpu.BASE,
        "fcw": fcw,
        "fsw": fsw,
        "ftw": ftw,
        "st": (st0,) + (bytes(10),) * 7,
    }
    values.update(changes)
    return CpuState(**values)  # type: ignore[arg-type]


TOP5_FLAGS = (5 << 11) | 0x4500 | 0x0200  # TOP = 5, C3, C2, C0 and C1 set
CASE_FIELDS = tuple[str, int, int, int, bytes]


@pytest.fixture(scope="module")
def native() -> list[tuple[CASE_FIELDS, list[str]]]:
    rng = random.Random(80)
    cases: list[CASE_FIELDS] = []
    for value in _edge_values(rng):
        for op in OPS[:13]:
            for rc in range(4):
                cases.append((op, 0x037F | rc << 10, TOP5_FLAGS, 1 << 5, value))
    for op in OPS:  # stack underflow (ST0 empty); precision control set to 24 bits; control stores
        cases.append((op, 0x037F, TOP5_FLAGS, 0xDF, ext(0, 0x3FFF, 1 << 63)))
        cases.append((op, 0x0C7F, 0x3800 | 0x21, 0x80, ext(1, 0x4005, 0xDEAD_BEEF_0000_0001)))
    answers = x86_cpu.run([f"x87 {op} {fcw:04x} {fsw:04x} {ftw:02x} {v.hex()}" for op, fcw, fsw, ftw, v in cases])
    return list(zip(cases, answers, strict=True))


@pytest.mark.parametrize("op", OPS)
def test_store_matches_the_cpu(op: str, native: list[tuple[CASE_FIELDS, list[str]]]) -> None:
    checked = 0
    for (name, fcw, fsw, ftw, value), (code, written, cpu_fsw, cpu_ftw) in native:
        if name != op:
            continue
        state = _state(fcw, fsw, ftw, value)
        result = x86_cpu.emulate_hex(code, state)
        effect = x86_cpu.effect(result)
        where = f"{op} fcw={fcw:04x} st0={value.hex()}"
        assert x86_cpu.apply(effect.writes, 16).hex() == written, where
        x87 = effect.x87
        if op.startswith("fnst"):
            assert x87 is None
            continue
        assert x87 is not None
        assert (f"{x87.fsw:04x}", f"{x87.ftw:02x}") == (cpu_fsw, cpu_ftw), where
        checked += 1
    assert checked >= 8 or op.startswith("fnst")


def test_pop_rotates_the_stack_and_records_pointers() -> None:
    regs = tuple(ext(0, 0x3FFF + i, 1 << 63) for i in range(8))
    state = CpuState(rip=0x1000, rdi=0x5000, fsw=3 << 11, ftw=0xFF, st=regs)
    insn = decode(bytes.fromhex("dd1f"), state)  # fstp qword ptr [rdi]
    assert insn is not None
    effect = emulate_store(insn, state)
    assert isinstance(effect, StoreEffect) and effect.x87 is not None
    assert effect.writes[0].data == struct.pack("<d", 1.0)
    assert effect.x87.st == (*regs[1:], regs[0])
    assert (effect.x87.fsw >> 11) & 7 == 4 and effect.x87.ftw == 0xF7
    assert effect.x87.pointers.fip == 0x1000 and effect.x87.pointers.fdp == 0x5000
    assert effect.x87.pointers.fop == 0x51F


def test_pending_unmasked_exception_is_refused() -> None:
    one = ext(0, 0x3FFF, 1 << 63)
    pending = _state(0x037E, 0x0081 | 5 << 11, 1 << 5, one)  # IE set and unmasked, ES set
    assert isinstance(x86_cpu.emulate_hex("d91f", pending), Unsupported)
    # FNSTSW does not wait: it stores the status word all the same
    assert x86_cpu.apply(x86_cpu.effect(x86_cpu.emulate_hex("dd3f", pending)).writes, 2) == bytes([0x81, 0x28])


def test_unmasked_exception_raised_by_the_store_is_refused() -> None:
    third = ext(0, 0x3FFD, 0xAAAA_AAAA_AAAA_AAAB)
    assert isinstance(x86_cpu.emulate_hex("d91f", _state(0x035F, 5 << 11, 1 << 5, third)), Unsupported)  # PM clear
    tiny_exact = ext(0, 16383 - 140, 1 << 63)  # exactly representable single denormal
    masked = x86_cpu.effect(x86_cpu.emulate_hex("d91f", _state(0x037F, 5 << 11, 1 << 5, tiny_exact)))
    assert masked.x87 is not None and not masked.x87.fsw & FSW_UE
    assert isinstance(x86_cpu.emulate_hex("d91f", _state(0x036F, 5 << 11, 1 << 5, tiny_exact)), Unsupported)


def test_x87_unavailable() -> None:
    result = x86_cpu.emulate_hex("d91f", _state(0x037F, 0, 1, bytes(10), cr0=0x8000_0033 | CR0_TS))
    assert isinstance(result, Fault) and result.vector == 7


# --- the conversions against exact arithmetic -----------------------------------------------

finite80 = st.builds(
    ext,
    st.integers(0, 1),
    st.integers(0, 0x7FFE),
    st.integers(0, (1 << 64) - 1),
).filter(lambda raw: exact_value(raw) is not None)
near_unit = st.builds(ext, st.integers(0, 1), st.integers(0x3F00, 0x4100), st.integers(1 << 63, (1 << 64) - 1))
rounding = st.sampled_from([RC_NEAREST, RC_DOWN, RC_UP, RC_ZERO])


def _value(raw: bytes) -> Fraction:
    parts = exact_value(raw)
    assert parts is not None
    sign, significand, scale = parts
    return (-1) ** sign * significand * Fraction(2) ** scale


def _decode_float(data: bytes, fmt: FloatFormat) -> Fraction | None:
    word = int.from_bytes(data, "little")
    sign = word >> (fmt.exponent_bits + fmt.fraction_bits)
    exponent = (word >> fmt.fraction_bits) & fmt.exponent_max
    fraction = word & ((1 << fmt.fraction_bits) - 1)
    if exponent == fmt.exponent_max:
        return None
    significand = fraction if exponent == 0 else fraction | 1 << fmt.fraction_bits
    return (-1) ** sign * significand * Fraction(2) ** (max(exponent, 1) - fmt.bias - fmt.fraction_bits)


def _neighbours(x: Fraction, fmt: FloatFormat) -> tuple[Fraction, Fraction]:
    """The representable values just below and above x (ignoring the exponent's upper end)."""
    magnitude = abs(x)
    quantum_exp = 1 - fmt.bias - fmt.fraction_bits
    if magnitude >= Fraction(2) ** (1 - fmt.bias):
        top = magnitude.numerator.bit_length() - magnitude.denominator.bit_length() + 1
        while Fraction(2) ** top > magnitude:
            top -= 1
        quantum_exp = top - fmt.fraction_bits
    quantum = Fraction(2) ** quantum_exp
    low = math.floor(x / quantum) * quantum
    return low, low + quantum if low != x else low


@pytest.mark.parametrize("fmt", [SINGLE, DOUBLE], ids=["m32", "m64"])
@given(raw=st.one_of(finite80, near_unit), rc=rounding)
def test_float_rounding_is_exact(fmt: FloatFormat, raw: bytes, rc: int) -> None:
    x = _value(raw)
    conversion = to_float(raw, fmt, rc)
    largest = (2 - Fraction(2) ** -fmt.fraction_bits) * Fraction(2) ** fmt.bias
    low, high = _neighbours(x, fmt)
    if low == high or rc == RC_DOWN:
        wanted = low
    elif rc == RC_UP:
        wanted = high
    elif rc == RC_ZERO:
        wanted = low if x > 0 else high
    else:
        quantum = high - low
        nearer_low = x - low < high - x or (x - low == high - x and (low / quantum) % 2 == 0)
        wanted = low if nearer_low else high
    got = _decode_float(conversion.data, fmt)
    if abs(wanted) > largest:
        assert conversion.flags & FSW_OE
        assert got is None or abs(got) == largest
        return
    assert got == wanted
    assert bool(conversion.flags & FSW_PE) == (wanted != x)
    assert conversion.c1 == (wanted != x and abs(wanted) > abs(x))
    if x == 0:
        assert conversion.data == fmt.pack(int(raw[9] >> 7), 0, 0)
    if fmt is DOUBLE and rc == RC_NEAREST:
        assert got == Fraction(float(x))  # Python's own correctly rounded conversion


@pytest.mark.parametrize("bits", [16, 32, 64])
@given(raw=st.one_of(finite80, near_unit), rc=rounding)
def test_integer_rounding_is_exact(bits: int, raw: bytes, rc: int) -> None:
    x = _value(raw)
    wanted = {RC_DOWN: math.floor(x), RC_UP: math.ceil(x), RC_ZERO: math.trunc(x), RC_NEAREST: round(x)}[rc]
    conversion = to_integer(raw, bits, rc)
    if not -(1 << (bits - 1)) <= wanted < 1 << (bits - 1):
        assert conversion.flags == FSW_IE
        assert conversion.data == (1 << (bits - 1)).to_bytes(bits // 8, "little")
        return
    assert int.from_bytes(conversion.data, "little", signed=True) == wanted
    assert bool(conversion.flags & FSW_PE) == (wanted != x)
    assert conversion.c1 == (abs(wanted) > abs(x))
