"""The mask table and the region parser, checked against the naive reference model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.spp_model import SppModel
from vmm.errors import SppRequestError
from vmm.spp.masks import FULL, MaskTable, mask_for_bytes
from vmm.spp.spec import combine, parse_request

BASE = 0x200000


@given(
    masks=st.lists(st.integers(0, FULL), min_size=2, max_size=2),
    addr=st.integers(BASE, BASE + 2 * 4096 - 1),
    length=st.sampled_from([1, 2, 4, 8, 16, 100, 300]),
)
def test_first_denied_agrees_with_model(masks: list[int], addr: int, length: int) -> None:
    table = MaskTable()
    model = SppModel(BASE, bytes(3 * 4096))
    for i, m in enumerate(masks):
        table.set(BASE + i * 4096, m)
        model.masks[BASE + i * 4096] = m
    denied = table.first_denied(addr, length)
    expected = next((a for a in range(addr, addr + length) if not model.writable(a)), None)
    assert denied == expected


def test_full_mask_means_unprotected() -> None:
    t = MaskTable()
    t.set(0x1000, 0)
    t.set(0x1000, FULL)
    assert t.pages() == []


def test_denied_ranges() -> None:
    t = MaskTable()
    t.set(0x1000, FULL & ~0b1101)
    assert list(t.denied_ranges(0x1000)) == [(0x1000, 0x1080), (0x1100, 0x1200)]


def test_byte_range_rounds_outward() -> None:
    # bytes 0x1070..0x1090 touch sub-pages 0 and 1
    assert mask_for_bytes(0x1000, 0x1070, 0x1090) == FULL & ~0b11
    assert mask_for_bytes(0x2000, 0x1070, 0x1090) == FULL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x1001", "not 4 KiB-aligned"),
        ("0x1000:0x1ffffffff", "does not fit in 32 bits"),
        ("0x1000:zz", "SPP write mask 'zz' is not a number"),
        ("0x2000-0x1000", "is empty"),
        ("nope", "not a number"),
    ],
)
def test_bad_requests_name_the_value(text: str, message: str) -> None:
    with pytest.raises(SppRequestError, match=message):
        parse_request(text)


def test_disagreeing_masks_are_refused_with_both_origins() -> None:
    with pytest.raises(SppRequestError, match=r"page 0x1000 is given mask 0x00000001 here and 0x00000000 at a"):
        combine([("a", "0x1000:0"), ("b", "0x1000:1")])


def test_same_mask_twice_and_byte_ranges_combine() -> None:
    got = combine([("a", "0x1000:0xf0"), ("b", "0x1000:0xf0"), ("c", "0x1000-0x1080"), ("d", "0x2f80-0x3000")])
    assert got == {0x1000: 0xF0 & ~1, 0x2000: FULL & ~(1 << 31)}
