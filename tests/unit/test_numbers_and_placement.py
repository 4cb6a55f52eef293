"""Option numbers and flat-image placement: every refusal names the offending value."""

from __future__ import annotations

import pytest

from vmm.cpu.modes import CpuMode
from vmm.errors import ImageError
from vmm.loaders.image import place_flat
from vmm.numbers import parse_int


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x100000", 0x100000),
        ("1048576", 1 << 20),
        ("16M", 16 << 20),
        ("4k", 4096),
        ("1G", 1 << 30),
        ("2MiB", 2 << 20),
        ("0x1_000", 0x1000),
    ],
)
def test_parse_int_accepts(text: str, value: int) -> None:
    assert parse_int(text, "x") == value


@pytest.mark.parametrize("text", ["", "zz", "0xg", "-5", "1.5M", "M"])
def test_parse_int_refuses_with_value_in_message(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_int(text, "size")


def test_defaults_per_mode() -> None:
    assert place_flat(100, CpuMode.REAL, 1 << 20, None, None).load == 0x7C00
    p = place_flat(100, CpuMode.LONG, 16 << 20, None, None)
    assert (p.load, p.entry, p.stack) == (0x100000, 0x100000, 0x100000)


def test_image_too_large_for_ram() -> None:
    with pytest.raises(ImageError, match=r"beyond guest RAM"):
        place_flat(2 << 20, CpuMode.LONG, 2 << 20, None, None)


def test_boot_structures_move_past_a_low_image() -> None:
    assert place_flat(0x100, CpuMode.LONG, 16 << 20, None, None).area.base == 0x1000
    assert place_flat(0x100, CpuMode.LONG, 16 << 20, 0x5000, None).area.base == 0x6000


def test_entry_outside_image() -> None:
    with pytest.raises(ImageError, match=r"entry point 0x200000 is outside"):
        place_flat(0x100, CpuMode.LONG, 16 << 20, None, 0x200000)


def test_real_mode_image_past_1mib() -> None:
    with pytest.raises(ImageError, match="past 1 MiB"):
        place_flat(0x10000, CpuMode.REAL, 4 << 20, 0xF8000, None)
