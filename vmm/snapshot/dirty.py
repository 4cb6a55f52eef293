"""Which guest pages changed since a snapshot: KVM's dirty log for the guest's writes, and the
guest memory's own record for the monitor's (devices, loaders, SPP verdicts write through the
host mapping, which KVM never sees)."""

from __future__ import annotations

from vmm.board.memory import GuestMemory
from vmm.board.slots import RamSlots


class DirtyTracker:
    def __init__(self, slots: RamSlots, memory: GuestMemory) -> None:
        self.slots = slots
        self.memory = memory
        self.baseline: object | None = None  # the snapshot the tracked pages are counted from

    def arm(self, baseline: object) -> None:
        """From now on, count changes from `baseline` (RAM must equal it at this moment)."""
        self.slots.set_dirty_logging(True)
        self.slots.harvest_dirty()
        self.memory.track_writes(set())
        self.baseline = baseline

    def take(self) -> set[int]:
        """Every page written since the last `arm` or `take`; the record starts afresh."""
        pages = self.slots.harvest_dirty()
        written = self.memory.written
        if written:
            pages |= written
            written.clear()
        return pages

    def disarm(self) -> None:
        self.slots.set_dirty_logging(False)
        self.memory.track_writes(None)
        self.baseline = None
