"""Snapshots: the whole state of a stopped machine, in memory or in a file, and the fast reset.

`state` (what a snapshot holds, capture and restore), `vcpu_state` and `vm_state` (KVM's state),
`ram` (sparse RAM), `fileformat` (the versioned file), `dirty` (pages written since a snapshot),
`hooks` (user state), `trigger` (when a run stops for a snapshot).
"""

from vmm.snapshot.hooks import SnapshotHooks
from vmm.snapshot.state import Snapshot

__all__ = ["Snapshot", "SnapshotHooks"]
