"""The MSR filter built for KVM: exactly the requested MSRs filtered, per access kind, within
KVM's limits (16 ranges, 0x600-byte bitmaps), and what KVM would decide from it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmm.errors import ConfigError
from vmm.msr.events import indices_of, parse_msr_exit
from vmm.msr.filter import MAX_SPAN, READ, WRITE, FilterRange, build_filter


def kvm_allows(ranges: list[FilterRange], index: int, kind: int) -> bool:
    """KVM's rule (kvm_msr_allowed): the first range that covers the index for this kind decides;
    none covering it: the default, allow."""
    for r in ranges:
        if r.flags & kind and r.base <= index < r.base + r.nmsrs:
            return not r.filtered(index)
    return True


def test_one_msr_one_range_one_clear_bit() -> None:
    (r,) = build_filter([0xC0000082], [])
    assert (r.flags, r.base, r.nmsrs, r.bitmap) == (READ, 0xC0000082, 1, b"\xfe")


def test_neighbours_share_a_range_and_stay_allowed() -> None:
    (r,) = build_filter([], [0x174, 0x176])
    assert (r.flags, r.base, r.nmsrs) == (WRITE, 0x174, 3)
    assert r.filtered(0x174) and not r.filtered(0x175) and r.filtered(0x176)


def test_far_apart_msrs_get_ranges_of_their_own() -> None:
    ranges = build_filter([0x10, 0x10 + MAX_SPAN], [])
    assert [(r.base, r.nmsrs) for r in ranges] == [(0x10, 1), (0x10 + MAX_SPAN, 1)]
    assert all(len(r.bitmap) <= 0x600 for r in ranges)


def test_too_many_ranges_is_refused() -> None:
    with pytest.raises(ConfigError, match="17 filter ranges"):
        build_filter([i * MAX_SPAN for i in range(17)], [])


@given(
    st.sets(st.integers(0xC0000000, 0xC0000000 + 3 * MAX_SPAN), max_size=20),
    st.sets(st.integers(0xC0000000, 0xC0000000 + 3 * MAX_SPAN), max_size=20),
    st.integers(0xC0000000, 0xC0000000 + 3 * MAX_SPAN),
)
def test_kvm_filters_exactly_what_was_asked(reads: set[int], writes: set[int], probe: int) -> None:
    ranges = build_filter(reads, writes)
    for index in reads | writes | {probe}:
        assert kvm_allows(ranges, index, READ) == (index not in reads)
        assert kvm_allows(ranges, index, WRITE) == (index not in writes)


def test_msr_exit_spellings() -> None:
    assert parse_msr_exit("0xc0000082") == (range(0xC0000082, 0xC0000083), True, True)
    assert parse_msr_exit("0x174-0x176:w") == (range(0x174, 0x177), False, True)
    assert parse_msr_exit("16:r") == (range(16, 17), True, False)
    for bad in ("0x10:q", "x", "5-4", "-1"):
        with pytest.raises(ConfigError):
            parse_msr_exit(bad)


def test_index_specs() -> None:
    assert indices_of(5) == range(5, 6)
    assert indices_of((5, 7)) == range(5, 8)
    assert indices_of(range(5, 9)) == range(5, 9)
    for bad in (True, range(5, 5), range(0, 10, 2), (1, 2, 3), "5", 1 << 32):
        with pytest.raises(ConfigError):
            indices_of(bad)  # type: ignore[arg-type]
