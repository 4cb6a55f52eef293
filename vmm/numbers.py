"""Parsing the numbers people type: addresses (0x100000, 1048576, 1M) and sizes (16M, 1G, 4096)."""

from __future__ import annotations

_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_int(text: str, what: str) -> int:
    """An integer in C notation (0x.., 0o.., 0b.., decimal) or with a K/M/G suffix (powers of 1024)."""
    t = text.strip().lower().replace("_", "")
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
