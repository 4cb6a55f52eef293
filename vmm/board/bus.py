"""One address-space type for the I/O ports and for MMIO: who answers an access at an address.

A mapping covers [start, end) and names its handler and the device's `base`: the router hands the
handler the access with `offset = address - base`, so a device never needs to know where it was
placed. Inserting over an existing mapping is refused unless the caller says `replace=True`; then
the new mapping takes over exactly the addresses it covers, and the parts of older mappings around
it stay where they were (with their own base, so their offsets do not move).

The port space keeps a direct index (port -> mapping) for the hot path, which the run loop reads
itself: at most 65,536 entries.
The MMIO space is searched with bisect, after a one-entry cache of the last hit, since consecutive
exits mostly go to the same device; a page that one mapping covers whole is then remembered in a
page index (page number -> mapping) that the run loop (`Vcpu.serve`) and the MMIO router look at
first, with no call. Last, a device may say that a plain store into a 128-byte block of its range
goes straight to RAM (the software SPP engine does, for allowed sub-pages): the store index (block
-> RAM view and the guest address of its first byte) lets the run loop write such a store itself,
with no call at all. Both indexes are emptied, in place, by every change of the space.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from vmm.errors import ConfigError
from vmm.record import TupleRecord
from vmm.verdict import Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    Handler = Callable[[Any], Verdict]

PAGE = 4096
STORE_BLOCK = 128  # the store index's unit: SPP's sub-page


class Mapping(TupleRecord):
    start: int
    end: int  # exclusive
    handler: Handler
    name: str
    base: int  # the address the device's offsets count from

    def describe(self, unit: str) -> str:
        return f"{unit} {self.start:#x}-{self.end - 1:#x} ({self.name})"


class AddressSpace:
    """Mappings over [0, limit). `unit` names an address in messages ("port", "address")."""

    def __init__(self, unit: str, limit: int, *, direct_index: bool) -> None:
        self.unit = unit
        self.limit = limit
        self._starts: list[int] = []
        self._maps: list[Mapping] = []  # sorted by start, never overlapping
        self._index: dict[int, Mapping] | None = {} if direct_index else None
        self._last: Mapping | None = None
        self._pages: dict[int, Mapping] = {}  # filled by lookup, emptied (in place) by every change
        self._stores: dict[int, tuple[memoryview, int]] = {}  # filled by store_through, emptied likewise

    # --- changes ---------------------------------------------------------------------------
    def insert(
        self, start: int, size: int, handler: Handler, *, name: str, base: int | None = None, replace: bool = False
    ) -> Mapping:
        """Map [start, start + size) to `handler`. An overlap is a ConfigError naming both ranges,
        unless `replace`, which carves the new range out of what was there."""
        ok = isinstance(start, int) and isinstance(size, int) and start >= 0 and size > 0
        if not ok or start + size > self.limit:
            raise ConfigError(f"bad {self.unit} range {start:#x}+{size:#x}: it must lie within 0-{self.limit - 1:#x}")
        new = Mapping(start, start + size, handler, name, start if base is None else base)
        clashes = list(self._overlapping(new.start, new.end))
        if clashes and not replace:
            other = clashes[0]
            raise ConfigError(
                f"{new.describe(self.unit)} overlaps {other.describe(self.unit)}; "
                "pass replace=True to take those addresses over"
            )
        for old in clashes:
            self._drop(old)
            if old.start < new.start:
                self._add(Mapping(old.start, new.start, old.handler, old.name, old.base))
            if new.end < old.end:
                self._add(Mapping(new.end, old.end, old.handler, old.name, old.base))
        self._add(new)
        return new

    def remove(self, start: int, size: int) -> list[Mapping]:
        """Unmap every address in [start, start + size); mappings that reach outside keep their
        other parts. Returns what was covered (as it was)."""
        end = start + size
        removed = list(self._overlapping(start, end))
        for old in removed:
            self._drop(old)
            if old.start < start:
                self._add(Mapping(old.start, start, old.handler, old.name, old.base))
            if end < old.end:
                self._add(Mapping(end, old.end, old.handler, old.name, old.base))
        return removed

    def move(self, old_start: int, new_start: int, *, replace: bool = False) -> Mapping:
        """Move the mapping that starts at `old_start` (a device keeps its offsets)."""
        current = self.lookup(old_start)
        if current is None or current.start != old_start:
            raise ConfigError(f"no mapping starts at {self.unit} {old_start:#x}")
        self._drop(current)
        try:
            base = new_start + (current.base - current.start)
            return self.insert(new_start, current.end - current.start, current.handler, name=current.name,
                               base=base, replace=replace)  # fmt: skip
        except ConfigError:
            self._add(current)
            raise

    def _overlapping(self, start: int, end: int) -> Iterator[Mapping]:
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        while i < len(self._maps) and self._maps[i].start < end:
            m = self._maps[i]
            if m.end > start:
                yield m
            i += 1

    def _add(self, m: Mapping) -> None:
        i = bisect.bisect_left(self._starts, m.start)
        self._starts.insert(i, m.start)
        self._maps.insert(i, m)
        if self._index is not None:
            for a in range(m.start, m.end):
                self._index[a] = m
        self._last = None
        self._pages.clear()
        self._stores.clear()

    def _drop(self, m: Mapping) -> None:
        i = self._maps.index(m)
        del self._maps[i]
        del self._starts[i]
        if self._index is not None:
            for a in range(m.start, m.end):
                if self._index.get(a) is m:
                    del self._index[a]
        self._last = None
        self._pages.clear()
        self._stores.clear()

    # --- lookups ---------------------------------------------------------------------------
    def lookup(self, addr: int) -> Mapping | None:
        if self._index is not None:
            return self._index.get(addr)
        last = self._last
        if last is not None and last.start <= addr < last.end:
            return last
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            m = self._maps[i]
            if addr < m.end:
                self._last = m
                page = addr & ~(PAGE - 1)
                if m.start <= page and page + PAGE <= m.end:
                    self._pages[addr // PAGE] = m
                return m
        return None

    @property
    def index(self) -> dict[int, Mapping]:
        """The direct index (ports only): the router's one dict lookup."""
        assert self._index is not None
        return self._index

    @property
    def pages(self) -> dict[int, Mapping]:
        """Page number -> the mapping that covers all of that page, for pages `lookup` has found
        (MMIO); the same dict for the space's life, so a router may keep its `get`."""
        return self._pages

    @property
    def stores(self) -> dict[int, tuple[memoryview, int]]:
        """The store index: 128-byte block number (address // STORE_BLOCK) -> (RAM view, guest
        address of view[0]), for blocks where a store of at most 7 bytes that stays inside the block
        and does not end a page is written to RAM by the run loop instead of going to the device
        (8-byte or page-ending MMIO writes may be one fragment of a wider store, which the device
        must see whole). The same dict for the space's life."""
        return self._stores

    def store_through(self, handler: Handler, block: int, view: memoryview, start: int) -> None:
        """Let plain stores into `block` go straight to RAM (`view`, whose first byte is guest
        address `start`) until the space changes or the device calls `forget_stores`. Only the
        handler that the block is mapped to may ask, so a device that wraps another cannot be
        bypassed by what the inner one asks."""
        m = self.lookup(block * STORE_BLOCK)
        if m is not None and m.handler == handler and m.end >= (block + 1) * STORE_BLOCK:
            self._stores[block] = (view, start)

    def forget_stores(self) -> None:
        """Empty the store index (a device whose rules changed: SPP masks, a second writer)."""
        self._stores.clear()

    def mappings(self) -> list[Mapping]:
        return list(self._maps)

    def __contains__(self, addr: int) -> bool:
        return self.lookup(addr) is not None
