"""The SPP write-mask table and the reference semantics, in plain Python (no KVM).

A 4 KiB guest-physical page holds 32 sub-pages of 128 bytes; its mask has bit i set when guest
writes to bytes [128*i, 128*i + 127] are allowed. FULL (all ones) means unprotected. A write is
allowed only if every sub-page it touches is allowed; a violation names the first denied byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from kvm_abi.subpage import FULL_ACCESS, SUBPAGE_SIZE, SUBPAGES_PER_PAGE
from vmm.errors import SppRequestError

PAGE = 4096
FULL = FULL_ACCESS
assert SUBPAGE_SIZE * SUBPAGES_PER_PAGE == PAGE


def subpage_of(gpa: int) -> int:
    return (gpa & (PAGE - 1)) // SUBPAGE_SIZE


def mask_for_bytes(page: int, start: int, end: int) -> int:
    """The mask that denies every sub-page of `page` that [start, end) touches (rounded outward)."""
    lo = max(start, page)
    hi = min(end, page + PAGE)
    if lo >= hi:
        return FULL
    first, last = subpage_of(lo), subpage_of(hi - 1)
    denied = ((1 << (last - first + 1)) - 1) << first
    return FULL & ~denied


class MaskTable:
    """Masks of the protected pages, keyed by page address. Pages not present are unprotected."""

    def __init__(self) -> None:
        self.masks: dict[int, int] = {}
        self.on_change: list[Callable[[int], None]] = []  # called with the page after every mask change

    def get(self, page: int) -> int:
        return self.masks.get(page, FULL)

    def set(self, page: int, mask: int) -> None:
        if mask == FULL:
            self.masks.pop(page, None)
        else:
            self.masks[page] = mask
        for changed in self.on_change:
            changed(page)

    def pages(self) -> list[int]:
        return sorted(self.masks)

    def first_denied(self, gpa: int, length: int) -> int | None:
        """The first byte of [gpa, gpa + length) in a denied sub-page, or None if all are allowed."""
        end = gpa + length
        pos = gpa
        masks = self.masks
        while pos < end:
            page = pos & ~(PAGE - 1)
            mask = masks.get(page)
            if mask is None:
                pos = page + PAGE
                continue
            sub_end = (pos | (SUBPAGE_SIZE - 1)) + 1
            if not mask >> subpage_of(pos) & 1:
                return pos
            pos = sub_end
        return None

    def denied_ranges(self, page: int) -> Iterator[tuple[int, int]]:
        """[start, end) of each run of denied sub-pages in `page`."""
        mask = self.get(page)
        i = 0
        while i < SUBPAGES_PER_PAGE:
            if mask >> i & 1:
                i += 1
                continue
            j = i
            while j < SUBPAGES_PER_PAGE and not mask >> j & 1:
                j += 1
            yield page + i * SUBPAGE_SIZE, page + j * SUBPAGE_SIZE
            i = j


def check_mask(mask: int) -> int:
    if not 0 <= mask <= FULL:
        raise SppRequestError(f"write mask {mask:#x} does not fit in 32 bits")
    return mask


def check_page(gpa: int) -> int:
    if gpa < 0 or gpa % PAGE:
        raise SppRequestError(f"SPP page address {gpa:#x} is not 4 KiB-aligned")
    return gpa
