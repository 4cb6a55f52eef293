"""Parsing the numbers people type: addresses (0x100000, 1048576, 1M), sizes (16M, 1G, 4096),
counts (-smp 2) and durations (--timeout 2.5). Each refuses what it cannot use with a ValueError
whose message names the value: the CLI's option types turn that into one line."""

from __future__ import annotations

import math

from vmm.errors import ConfigError

MAX_DIGITS = 64  # room for any 64-bit value in binary with its prefix
MAX_SECONDS = 1e7  # about 115 days: the longest timeout the runner's clocks and waits take
_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_int(text: str, what: str) -> int:
    """An integer in C notation (0x.., 0o.., 0b.., decimal) or with a K/M/G suffix (powers of 1024)."""
    t = text.strip().lower().replace("_", "")
    if len(t) > MAX_DIGITS:  # int() of thousands of digits is slow, then refused by Python itself
        raise ValueError(f"{what} {_short(text)} has more than {MAX_DIGITS} characters")
    if t.endswith(("kib", "mib", "gib")):
        t = t[:-2]
    elif t.endswith(("kb", "mb", "gb")):
        t = t[:-1]
    mult = _SUFFIXES.get(t[-1:], 1) if t and not t.startswith(("0x", "0b")) else 1
    if mult != 1:
        t = t[:-1]
    try:
        value = int(t, 0) * mult
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{what} {text!r} is negative")
    return value


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:20] + "..." + text[-8:])


def parse_count(text: str, what: str, low: int = 1) -> int:
    """A plain decimal count of at least `low` (vCPUs, iterations)."""
    t = text.strip()
    if not t.isdigit() or len(t) > MAX_DIGITS:
        raise ValueError(f"{what} {_short(text)} is not a positive number")
    value = int(t)
    if value < low:
        raise ValueError(f"{what} {_short(text)} is " + ("not a positive number" if low == 1 else f"below {low}"))
    return value


def parse_on_off(text: str, refusal: str) -> bool:
    """QEMU's boolean property values (on/off, yes/no, true/false); `refusal` is the whole
    message for anything else."""
    if text in ("on", "yes", "true"):
        return True
    if text in ("off", "no", "false"):
        return False
    raise ConfigError(refusal)


def parse_seconds(text: str, what: str = "timeout") -> float:
    """A finite duration in seconds, above 0 and at most MAX_SECONDS (inf, nan, 1e30 and -1 are
    refused: the waits they would feed overflow or never end)."""
    t = text.strip()
    try:
        value = float(t) if len(t) <= MAX_DIGITS else math.nan
    except ValueError:
        raise ValueError(f"{what} {_short(text)} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise ValueError(f"{what} {_short(text)} must be a number of seconds above 0 and at most {MAX_SECONDS:g}")
    return value
