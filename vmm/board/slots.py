"""The memslot map of guest RAM: which pages the guest reaches directly and which are trapped.

RAM regions start as one writable memslot each. A participant (the software SPP engine) can ask
for a set of pages to be trapped: those pages are then mapped through read-only memslots, so the
guest's reads and fetches run at full speed and its writes exit as MMIO. `relayout` rebuilds only
the memslots whose extent changes, and refuses, before changing anything, a layout that needs
more memslots than KVM has.

Which pages the guest wrote comes from KVM's per-slot dirty bitmaps or, on a VM made with the
dirty ring, from each vCPU's ring.
"""

from __future__ import annotations

import threading

from kvm_abi import constants as kc
from kvm_abi import ffi
from vmm.board.memory import GuestMemory, RamRegion
from vmm.errors import SppRequestError
from vmm.kvm.vcpu import Vcpu
from vmm.kvm.vm import Vm

PAGE = 4096
Segment = tuple[int, int, int, int]  # gpa, size, host address, flags


class RamSlots:
    def __init__(self, vm: Vm, memory: GuestMemory) -> None:
        self.vm = vm
        self.memory = memory
        self.trapped: frozenset[int] = frozenset()
        self.log_dirty = False  # every slot has KVM_MEM_LOG_DIRTY_PAGES (a snapshot's fast reset)
        self._retired_dirty: set[int] = set()  # pages dirty in slots a relayout deleted
        self._ring_lock = threading.Lock()  # a vCPU thread empties its full ring into _retired_dirty
        self.rings_emptied = 0  # KVM_EXIT_DIRTY_RING_FULL exits served

    def add_region(self, region: RamRegion) -> None:
        flags = kc.KVM_MEM_LOG_DIRTY_PAGES if self.log_dirty else 0
        self.vm.set_memslot(self.vm.free_slot(), region.gpa, region.size, region.host_addr, flags)

    def set_dirty_logging(self, on: bool) -> None:
        """Turn KVM's dirty log on or off for every RAM slot (the vCPUs outside KVM_RUN)."""
        if on == self.log_dirty:
            return
        self.log_dirty = on
        self.relayout(self.trapped)
        self._retired_dirty.clear()
        if on:
            self.harvest_dirty()  # start from a clean log

    def harvest_dirty(self) -> set[int]:
        """The pages the guest wrote since the last harvest, from every slot's dirty log (which
        KVM clears as it is read), with those of slots deleted since."""
        if self.vm.dirty_ring_entries:
            self._harvest_rings(self.vm.vcpus)
        with self._ring_lock:
            dirty, self._retired_dirty = self._retired_dirty, set()
        if not self.vm.dirty_ring_entries:
            for ms in list(self.vm.memslots.values()):
                dirty |= self._slot_dirty(ms.slot, ms.gpa, ms.size)
        return dirty

    def ring_full(self, vcpu: Vcpu) -> None:
        """KVM_EXIT_DIRTY_RING_FULL on `vcpu` (from its own thread): empty its ring, so KVM_RUN
        can go on; the pages wait for the next harvest."""
        self.rings_emptied += 1
        self._harvest_rings([vcpu])

    def _harvest_rings(self, vcpus: list[Vcpu]) -> None:
        slots = self.vm.memslots
        pages = set()
        for vcpu in vcpus:
            for slot, offset in vcpu.harvest_dirty_ring():
                ms = slots.get(slot & 0xFFFF)  # address space 0: the only one on x86 outside SMM
                if ms is not None:
                    pages.add(ms.gpa + offset * PAGE)
        if pages:
            self.vm.reset_dirty_rings()
            with self._ring_lock:
                self._retired_dirty |= pages

    def _slot_dirty(self, slot: int, gpa: int, size: int) -> set[int]:
        npages = size // PAGE
        words = (npages + 63) // 64
        bitmap = ffi.new("uint64_t[]", words)
        self.vm.get_dirty_log(slot, bitmap)
        bits = int.from_bytes(ffi.buffer(bitmap), "little")
        pages: set[int] = set()
        while bits:
            low = bits & -bits
            pages.add(gpa + (low.bit_length() - 1) * PAGE)
            bits ^= low
        return pages

    def relayout(self, trapped: set[int] | frozenset[int]) -> None:
        """Make exactly the pages in `trapped` read-only. The vCPUs must be outside KVM_RUN (the
        caller pauses them); an access that still lands in the gap between a delete and a create
        is an MMIO exit the caller serves from RAM."""
        wanted: list[Segment] = []
        log = kc.KVM_MEM_LOG_DIRTY_PAGES if self.log_dirty else 0
        for r in self.memory.regions:
            wanted += [(g, size, host, flags | log) for g, size, host, flags in segments(r, trapped)]
        current = {(s.gpa, s.size, s.host_addr, s.flags): s.slot for s in self.vm.memslots.values()}
        keep = set(wanted) & set(current)
        stale = [slot for key, slot in current.items() if key not in keep]
        fresh = [seg for seg in wanted if seg not in keep]
        if len(keep) + len(fresh) > self.vm.max_memslots:
            raise SppRequestError(
                f"{len(trapped)} protected pages in {len(wanted)} runs exceed KVM's {self.vm.max_memslots} memslots"
            )
        # Delete before create: KVM refuses overlapping slots.
        ring = bool(self.vm.dirty_ring_entries)
        if ring and stale:
            self._harvest_rings(self.vm.vcpus)  # while the ring entries' slot numbers still mean them
        for slot in stale:
            ms = self.vm.memslots[slot]
            if ms.flags & kc.KVM_MEM_LOG_DIRTY_PAGES and not ring:  # its log goes with it: keep what it holds
                self._retired_dirty |= self._slot_dirty(slot, ms.gpa, ms.size)
            self.vm.delete_memslot(slot)
        for gpa, size, host, flags in fresh:
            self.vm.set_memslot(self.vm.free_slot(), gpa, size, host, flags)
        self.trapped = frozenset(trapped)


def segments(region: RamRegion, trapped: set[int] | frozenset[int]) -> list[Segment]:
    """Split `region` into maximal runs of equally trapped pages. Linear in the number of trapped
    pages inside the region, not in its size: a 4 GiB region with two trapped pages is 5 runs."""
    inside = sorted(p for p in trapped if region.gpa <= p < region.end)
    out: list[Segment] = []
    start = region.gpa
    i = 0
    while i < len(inside):
        first = inside[i]
        last = first
        while i + 1 < len(inside) and inside[i + 1] == last + PAGE:
            i += 1
            last = inside[i]
        if first > start:
            out.append(_segment(region, start, first, 0))
        out.append(_segment(region, first, last + PAGE, kc.KVM_MEM_READONLY))
        start = last + PAGE
        i += 1
    if start < region.end:
        out.append(_segment(region, start, region.end, 0))
    return out


def _segment(region: RamRegion, start: int, end: int, flags: int) -> Segment:
    return (start, end - start, region.host_addr + (start - region.gpa), flags)
