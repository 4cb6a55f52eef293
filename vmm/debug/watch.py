"""Write watchpoints on the SPP engine's trapped pages: `Watchpoints.add(gva, length, "w", handler)`.

Debug-register data breakpoints never fire on this project's hosts (README, host notes), but a
write into a page the SPP engine traps reaches the monitor at CPL 0 and at CPL 3 alike, with its
address, size and data. So a watch denies the 128-byte sub-pages that hold its bytes, and an SPP
policy placed before every other one claims the writes into those pages: it lets each through
(`Allow`), and for a write that overlaps watched bytes runs the handler once the write is in
memory, with RIP past the writing instruction, as an x86 data breakpoint would report it. Writes
to the rest of a watched sub-page are let through without a call.

Reads cannot be watched: a read-only memslot passes reads at full speed, and nothing else here
makes a load exit without also trapping instruction fetches from the page. "r" and "rw" are
refused with that reason.

The guest-virtual address is translated through vCPU `vcpu`'s page tables when the watch is set;
a guest that remaps the page later keeps the watch on the old physical bytes. A page that already
has SPP protection of its own cannot be watched (the two would have to share one mask). Snapshots
leave the watches' pages out (`MasksWithoutWatches`): a restore keeps the watches set now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vmm.debug.events import DebugEvent, DebugHandler
from vmm.errors import ConfigError
from vmm.spp.event import ALLOW, Allow, SppEvent, SppVerdict
from vmm.spp.masks import FULL, PAGE
from vmm.verdict import Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.spp.controller import Spp

MAX_LENGTH = 1 << 20  # bytes one watch may cover
READ_REFUSED = (
    "read watchpoints are not available: reads of a trapped page are not seen by the monitor "
    "(only writes to it exit), and debug-register data breakpoints do not fire on this host"
)


@dataclass
class Watch:
    gva: int
    length: int
    handler: DebugHandler
    pieces: list[tuple[int, int, int]]  # (gpa, length, offset into the watch) per page

    def overlap(self, gpa: int, size: int) -> bool:
        return any(p < gpa + size and gpa < p + n for p, n, _ in self.pieces)

    def value(self, memory: Any) -> bytes:
        return b"".join(memory.read(p, n) for p, n, _ in self.pieces)

    def gva_of(self, gpa: int) -> int | None:
        for p, n, off in self.pieces:
            if p <= gpa < p + n:
                return self.gva + off + gpa - p
        return None


class Watchpoints:
    def __init__(self, spp: Callable[[], Spp], vcpus: Sequence[Any], memory: Any) -> None:
        self._make_spp = spp
        self._spp: Spp | None = None
        self.vcpus = list(vcpus)
        self.memory = memory
        self.watches: dict[int, Watch] = {}
        self._next = 0
        self.owned: set[int] = set()  # pages whose SPP masks are the watches'
        self._by_page: dict[int, list[tuple[int, int, Watch]]] = {}  # page -> (gpa, end, watch)
        self.hits = 0

    @property
    def spp(self) -> Spp:
        if self._spp is None:
            self._spp = self._make_spp()
            self._spp.policies.insert(0, self._policy)
        return self._spp

    # --- setting and removing --------------------------------------------------------------
    def add(self, gva: int, length: int, kind: str, handler: DebugHandler, vcpu: int = 0) -> int:
        if kind not in ("w", "r", "rw"):
            raise ConfigError(f"watchpoint kind {kind!r}: use 'w' (writes); reads cannot be watched here")
        if kind != "w":
            raise ConfigError(f"watchpoint at {gva:#x} ({kind!r}): {READ_REFUSED}")
        if not callable(handler):
            raise ConfigError(f"watch handler {handler!r} is not callable")
        if not 0 < length <= MAX_LENGTH or not 0 <= gva < 1 << 64 or gva + length > 1 << 64:
            raise ConfigError(
                f"watchpoint {gva:#x}+{length}: the length is 1 to {MAX_LENGTH} bytes of a 64-bit address"
            )
        if not 0 <= vcpu < len(self.vcpus):
            raise ConfigError(f"no vCPU {vcpu}")
        pieces = self._translate(self.vcpus[vcpu], gva, length)
        pages = {p & ~(PAGE - 1) for p, n, _ in pieces} | {(p + n - 1) & ~(PAGE - 1) for p, n, _ in pieces}
        spp = self.spp
        for page in pages:
            if page not in self.owned and spp.mask(page) != FULL:
                raise ConfigError(f"watchpoint at {gva:#x}: page {page:#x} has SPP protection of its own")
        wid = self._next
        self._next += 1
        self.watches[wid] = Watch(gva, length, handler, pieces)
        self._enforce(pages)
        return wid

    def remove(self, wid: int) -> None:
        watch = self.watches.pop(wid, None)
        if watch is None:
            raise ConfigError(f"no watchpoint {wid}")
        self._enforce(
            {p & ~(PAGE - 1) for p, _, _ in watch.pieces} | {(p + n - 1) & ~(PAGE - 1) for p, n, _ in watch.pieces}
        )

    def find(self, gva: int, length: int) -> int | None:
        for wid, w in self.watches.items():
            if w.gva == gva and w.length == length:
                return wid
        return None

    def clear(self) -> None:
        for wid in list(self.watches):
            self.remove(wid)

    def _translate(self, vcpu: Any, gva: int, length: int) -> list[tuple[int, int, int]]:
        pieces = []
        off = 0
        while off < length:
            addr = gva + off
            n = min(length - off, PAGE - (addr & (PAGE - 1)))
            gpa = vcpu.translate(addr)
            if gpa is None or not self.memory.contains(gpa, n):
                raise ConfigError(f"watchpoint at {gva:#x}: {addr:#x} is not mapped to guest RAM")
            pieces.append((gpa, n, off))
            off += n
        return pieces

    def _enforce(self, pages: set[int]) -> None:
        """Deny exactly the sub-pages that hold watched bytes in `pages`; release the others."""
        masks = {}
        for page in pages:
            mask = FULL
            for w in self.watches.values():
                for p, n, _ in w.pieces:
                    lo, hi = max(p, page), min(p + n, page + PAGE)
                    if lo < hi:
                        first, last = (lo - page) >> 7, (hi - 1 - page) >> 7
                        mask &= ~(((1 << (last - first + 1)) - 1) << first)
            masks[page] = mask
        self.spp.protect_pages(masks)
        for page, mask in masks.items():
            if mask == FULL:
                self.owned.discard(page)
            else:
                self.owned.add(page)
        # what the policy looks up per write: the watched byte ranges of each page
        self._by_page = {}
        for w in self.watches.values():
            for p, n, _ in w.pieces:
                for page in {p & ~(PAGE - 1), (p + n - 1) & ~(PAGE - 1)}:
                    self._by_page.setdefault(page, []).append((p, p + n, w))

    # --- the writes ----------------------------------------------------------------------------
    def _policy(self, event: SppEvent) -> SppVerdict | None:
        by_page = self._by_page
        ranges = by_page.get(event.gpa & ~(PAGE - 1))
        if ranges is None:
            return None  # another protection's write: the other policies judge it
        start = event.write_gpa if event.write_gpa is not None else event.gpa
        end = start + (event.size or 1)
        last = (end - 1) & ~(PAGE - 1)
        if last != event.gpa & ~(PAGE - 1):  # a store that runs on into the next page
            ranges = ranges + by_page.get(last, [])
        hits = [w for lo, hi, w in ranges if lo < end and start < hi]
        if not hits:
            return ALLOW
        return Allow(then=lambda: self._fire(hits, event, start))

    def _fire(self, hits: list[Watch], event: SppEvent, start: int) -> Verdict:
        self.hits += 1
        vcpu = self.vcpus[event.vcpu]
        for w in hits:
            at = w.gva_of(start)
            verdict = w.handler(DebugEvent(vcpu, vcpu.get_regs(), "watch", w.gva, w.value(self.memory), at, event.data))
            if verdict is not None:
                return verdict
        return None


class MasksWithoutWatches:
    """The SPP masks as a snapshot sees them: the watchpoints' pages left out of what is saved and
    left alone by what is put back (a watch stays as it is now, as a handler does)."""

    def __init__(self, spp: Any, watches: Watchpoints) -> None:
        self.spp = spp
        self.watches = watches

    @property
    def backend_name(self) -> str:
        return str(self.spp.backend_name)

    def masks(self) -> dict[int, int]:
        return {p: m for p, m in self.spp.masks().items() if p not in self.watches.owned}

    def protect_pages(self, masks: dict[int, int]) -> None:
        mine = {p: m for p, m in masks.items() if p not in self.watches.owned}
        if mine:
            self.spp.protect_pages(mine)
