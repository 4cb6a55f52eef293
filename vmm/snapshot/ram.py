"""Guest RAM in a snapshot: the pages that are not all zero, found without touching the rest.

RAM is a memfd, so SEEK_DATA/SEEK_HOLE name the extents that were ever written; pages in holes
read as zero and are never faulted in (scanning them through the mapping would allocate them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from vmm.board.memory import GuestMemory, RamRegion

PAGE = 4096
CHUNK = 1 << 20  # compared whole first: most chunks of a data extent are all zero or all not
_ZERO_PAGE = bytes(PAGE)
_ZERO_CHUNK = bytes(CHUNK)

Pages = dict[int, bytes]  # page gpa -> its 4096 bytes, only pages that are not all zero


def data_extents(region: RamRegion) -> Iterator[tuple[int, int]]:
    """(start, end) offsets into the region's memfd that hold data, page-aligned."""
    pos = 0
    while pos < region.size:
        try:
            start = os.lseek(region.memfd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            return
        end = min(os.lseek(region.memfd, start, os.SEEK_HOLE), region.size)
        yield start & ~(PAGE - 1), min((end + PAGE - 1) & ~(PAGE - 1), region.size)
        pos = end


def nonzero_pages(region: RamRegion) -> Iterator[int]:
    """Offsets of the region's pages that hold something other than zeros."""
    buf = region.buffer
    for start, end in data_extents(region):
        for chunk in range(start, end, CHUNK):
            stop = min(chunk + CHUNK, end)
            data = buf[chunk:stop].tobytes()  # bytes compare by memcmp; memoryviews item by item
            if data == _ZERO_CHUNK[: stop - chunk]:
                continue
            for rel in range(0, stop - chunk, PAGE):
                if data[rel : rel + PAGE] != _ZERO_PAGE:
                    yield chunk + rel


def capture_ram(memory: GuestMemory) -> Pages:
    pages: Pages = {}
    for r in memory.regions:
        buf = r.buffer
        for off in nonzero_pages(r):
            pages[r.gpa + off] = bytes(buf[off : off + PAGE])
    return pages


def restore_ram(memory: GuestMemory, pages: Pages) -> None:
    """All of RAM as in the snapshot: its pages written, every other page that holds data zeroed."""
    for r in memory.regions:
        buf = r.buffer
        for start, end in list(data_extents(r)):
            for off in range(start, end, PAGE):
                if r.gpa + off not in pages:
                    buf[off : off + PAGE] = _ZERO_PAGE
        for gpa, data in pages.items():
            if r.gpa <= gpa < r.end:
                buf[gpa - r.gpa : gpa - r.gpa + PAGE] = data


def restore_pages(memory: GuestMemory, pages: Pages, which: Iterable[int]) -> int:
    """Only the pages `which` (gpas) as in the snapshot; returns how many were copied."""
    count = 0
    regions = memory.regions
    for gpa in which:
        for r in regions:
            if r.gpa <= gpa < r.end:
                off = gpa - r.gpa
                r.buffer[off : off + PAGE] = pages.get(gpa, _ZERO_PAGE)
                count += 1
                break
    return count
