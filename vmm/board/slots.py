"""The memslot map of guest RAM: which pages the guest reaches directly and which are trapped.

RAM regions start as one writable memslot each. A participant (the software SPP engine) can ask
for a set of pages to be trapped: those pages are then mapped through read-only memslots, so the
guest's reads and fetches run at full speed and its writes exit as MMIO. `relayout` rebuilds only
the memslots whose extent changes, and refuses, before changing anything, a layout that needs
more memslots than KVM has.
"""

from __future__ import annotations

from kvm_abi import constants as kc
from vmm.board.memory import GuestMemory, RamRegion
from vmm.errors import SppRequestError
from vmm.kvm.vm import Vm

PAGE = 4096
Segment = tuple[int, int, int, int]  # gpa, size, host address, flags


class RamSlots:
    def __init__(self, vm: Vm, memory: GuestMemory) -> None:
        self.vm = vm
        self.memory = memory
        self.trapped: frozenset[int] = frozenset()

    def add_region(self, region: RamRegion) -> None:
        self.vm.set_memslot(self.vm.free_slot(), region.gpa, region.size, region.host_addr, 0)

    def relayout(self, trapped: set[int] | frozenset[int]) -> None:
        """Make exactly the pages in `trapped` read-only. The vCPUs must be outside KVM_RUN (the
        caller pauses them); an access that still lands in the gap between a delete and a create
        is an MMIO exit the caller serves from RAM."""
        wanted: list[Segment] = []
        for r in self.memory.regions:
            wanted += segments(r, trapped)
        current = {(s.gpa, s.size, s.host_addr, s.flags): s.slot for s in self.vm.memslots.values()}
        keep = set(wanted) & set(current)
        stale = [slot for key, slot in current.items() if key not in keep]
        fresh = [seg for seg in wanted if seg not in keep]
        if len(keep) + len(fresh) > self.vm.max_memslots:
            raise SppRequestError(
                f"{len(trapped)} protected pages in {len(wanted)} runs exceed KVM's {self.vm.max_memslots} memslots"
            )
        # Delete before create: KVM refuses overlapping slots.
        for slot in stale:
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
