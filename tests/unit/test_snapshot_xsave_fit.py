"""A saved XSAVE area put into this host's area size: padded with zeros when smaller, cut when
larger with only zeros past the size, refused (None) when state lies past it."""

from __future__ import annotations

from vmm.snapshot.vcpu_state import xsave_fits


def test_a_smaller_area_is_padded_with_zeros() -> None:
    assert xsave_fits(b"\x01" * 4096, 11008) == b"\x01" * 4096 + bytes(11008 - 4096)


def test_an_area_of_the_same_size_is_kept() -> None:
    area = bytes(range(256)) * 16
    assert xsave_fits(area, 4096) == area


def test_a_larger_area_with_zeros_past_the_size_is_cut() -> None:
    assert xsave_fits(b"\x02" * 4096 + bytes(6912), 4096) == b"\x02" * 4096


def test_a_larger_area_with_state_past_the_size_is_refused() -> None:
    assert xsave_fits(bytes(4096) + b"\x00\x01" + bytes(6910), 4096) is None
