"""Exact conversions of x87 80-bit extended values to the formats x87 stores write.

Integer arithmetic only: a finite 80-bit value is significand * 2**exponent, rounded to the
destination's quantum under the FCW rounding control, with the masked responses of the SDM
(Vol. 1 §4.8.3, §8.5 and the FST/FIST/FISTTP pages): QNaN indefinite and integer indefinite for
invalid operands, infinity or the largest finite value on overflow by rounding direction,
denormalised results on underflow. Tininess is detected after rounding, as x86 does.
`Conversion.c1` is the x87 "rounded up" bit (the magnitude was incremented).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

RC_NEAREST: Final = 0
RC_DOWN: Final = 1
RC_UP: Final = 2
RC_ZERO: Final = 3

# x87 status-word bits
FSW_IE: Final = 1 << 0
FSW_DE: Final = 1 << 1
FSW_ZE: Final = 1 << 2
FSW_OE: Final = 1 << 3
FSW_UE: Final = 1 << 4
FSW_PE: Final = 1 << 5
FSW_SF: Final = 1 << 6
FSW_ES: Final = 1 << 7
FSW_C0: Final = 1 << 8
FSW_C1: Final = 1 << 9
FSW_C2: Final = 1 << 10
FSW_C3: Final = 1 << 14
FSW_B: Final = 1 << 15
FSW_EXCEPTIONS: Final = 0x3F

_EXP_MAX80: Final = 0x7FFF
_BIAS80: Final = 16383
_J: Final = 1 << 63
_FRACTION80: Final = _J - 1
_QUIET80: Final = 1 << 62

INDEFINITE80: Final = (0xFFFF << 64 | 0xC000_0000_0000_0000).to_bytes(10, "little")


@dataclass(frozen=True, slots=True)
class FloatFormat:
    fraction_bits: int
    exponent_bits: int

    @property
    def bias(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1

    @property
    def exponent_max(self) -> int:
        return (1 << self.exponent_bits) - 1

    @property
    def size(self) -> int:
        return (1 + self.exponent_bits + self.fraction_bits) // 8

    def pack(self, sign: int, exponent: int, fraction: int) -> bytes:
        word = sign << (self.exponent_bits + self.fraction_bits) | exponent << self.fraction_bits | fraction
        return word.to_bytes(self.size, "little")

    def indefinite(self) -> bytes:
        return self.pack(1, self.exponent_max, 1 << (self.fraction_bits - 1))


SINGLE: Final = FloatFormat(23, 8)
DOUBLE: Final = FloatFormat(52, 11)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A converted value: its bytes, the exception flags raised (FSW bits 0-6, as with all of
    them masked), whether the exact result was tiny (the underflow exception fires on tininess
    alone when unmasked), and C1."""

    data: bytes
    flags: int = 0
    tiny: bool = False
    c1: bool = False


def split80(raw: bytes) -> tuple[int, int, int]:
    """(sign, biased exponent, 64-bit significand with the explicit integer bit)."""
    word = int.from_bytes(raw[:10], "little")
    return word >> 79, (word >> 64) & _EXP_MAX80, word & 0xFFFF_FFFF_FFFF_FFFF


def is_unsupported80(exponent: int, significand: int) -> bool:
    """Pseudo-NaN, pseudo-infinity and unnormal encodings: invalid operands since the 387."""
    return exponent != 0 and not significand & _J


def _round(magnitude: int, shift: int, sign: int, rc: int) -> tuple[int, bool, bool]:
    """magnitude * 2**-shift rounded to an integer under rc: (value, inexact, incremented)."""
    if shift <= 0:
        return magnitude << -shift, False, False
    quotient = magnitude >> shift
    rest = magnitude & ((1 << shift) - 1)
    if rest == 0:
        return quotient, False, False
    if rc == RC_NEAREST:
        half = 1 << (shift - 1)
        up = rest > half or (rest == half and bool(quotient & 1))
    elif rc == RC_UP:
        up = sign == 0
    elif rc == RC_DOWN:
        up = sign == 1
    else:
        up = False
    return quotient + up, True, up


def to_float(raw: bytes, fmt: FloatFormat, rc: int) -> Conversion:
    """FST m32fp/m64fp of an 80-bit register value."""
    sign, exponent, significand = split80(raw)
    f = fmt.fraction_bits
    if is_unsupported80(exponent, significand):
        return Conversion(fmt.indefinite(), FSW_IE)
    if exponent == _EXP_MAX80:
        fraction = significand & _FRACTION80
        if fraction == 0:
            return Conversion(fmt.pack(sign, fmt.exponent_max, 0))
        flags = 0 if fraction & _QUIET80 else FSW_IE  # an SNaN is quietened, and signals
        narrowed = (fraction | _QUIET80) >> (63 - f)
        return Conversion(fmt.pack(sign, fmt.exponent_max, narrowed), flags)
    if significand == 0:
        return Conversion(fmt.pack(sign, 0, 0))
    # Value = significand * 2**scale; denormals and pseudo-denormals use exponent 1.
    scale = max(exponent, 1) - _BIAS80 - 63
    top = significand.bit_length() - 1 + scale  # value in [2**top, 2**(top+1))
    emin = 1 - fmt.bias
    # Tininess after rounding: round to the destination precision with an unbounded exponent.
    unbounded, _, _ = _round(significand, top - f - scale, sign, rc)
    tiny = top < emin and not (top + 1 == emin and unbounded == 1 << (f + 1))
    quantum = max(top, emin) - f
    rounded, inexact, up = _round(significand, quantum - scale, sign, rc)
    if rounded >> (f + 1):  # rounding carried into a new binade
        rounded >>= 1
        quantum += 1
    flags = FSW_PE if inexact else 0
    if tiny and inexact:
        flags |= FSW_UE
    if rounded >> f == 0:  # denormal (or zero) result
        return Conversion(fmt.pack(sign, 0, rounded), flags, tiny, up)
    biased = quantum + f + fmt.bias
    if biased >= fmt.exponent_max:
        to_infinity = rc == RC_NEAREST or (rc == RC_UP and sign == 0) or (rc == RC_DOWN and sign == 1)
        flags |= FSW_OE | FSW_PE
        if to_infinity:
            return Conversion(fmt.pack(sign, fmt.exponent_max, 0), flags, False, True)
        return Conversion(fmt.pack(sign, fmt.exponent_max - 1, (1 << f) - 1), flags, False, False)
    return Conversion(fmt.pack(sign, biased, rounded - (1 << f)), flags, tiny, up)


def to_integer(raw: bytes, bits: int, rc: int) -> Conversion:
    """FIST/FISTP (rc from FCW) and FISTTP (RC_ZERO) to a bits-wide signed integer."""
    size = bits // 8
    indefinite = Conversion((1 << (bits - 1)).to_bytes(size, "little"), FSW_IE)
    sign, exponent, significand = split80(raw)
    if exponent == _EXP_MAX80 or is_unsupported80(exponent, significand):
        return indefinite
    if significand == 0:
        return Conversion(bytes(size))
    scale = max(exponent, 1) - _BIAS80 - 63
    if significand.bit_length() + scale > bits + 1:  # far out of range; spares a huge shift
        return indefinite
    magnitude, inexact, up = _round(significand, -scale, sign, rc)
    value = -magnitude if sign else magnitude
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        return indefinite
    return Conversion((value & ((1 << bits) - 1)).to_bytes(size, "little"), FSW_PE if inexact else 0, False, up)


def exact_value(raw: bytes) -> tuple[int, int, int] | None:
    """(sign, significand, scale) with value = (-1)**sign * significand * 2**scale for finite
    supported encodings, None for NaN, infinity and unsupported ones. For tests and reports."""
    sign, exponent, significand = split80(raw)
    if exponent == _EXP_MAX80 or is_unsupported80(exponent, significand):
        return None
    return sign, significand, max(exponent, 1) - _BIAS80 - 63
