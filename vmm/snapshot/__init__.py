"""Snapshots: the whole state of a stopped machine, in memory or in a file, and the fast reset.

`state` (what a snapshot holds, capture and restore), `vcpu_state` and `vm_state` (KVM's state),
`ram` (sparse RAM), `fileformat` (the versioned file), `dirty` (pages written since a snapshot),
`hooks` (user state), `trigger` (when a run stops for a snapshot).
"""

from __future__ import annotations

from vmm.snapshot.hooks import SnapshotHooks

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.snapshot.state import Snapshot

__all__ = ["Snapshot", "SnapshotHooks"]


def __getattr__(name: str) -> Any:
    # Every Machine holds its snapshot hooks, but only a snapshot needs the state and file code
    # (and hashlib): `Snapshot` is imported on first use, so a plain run does not pay for it.
    if name == "Snapshot":
        from vmm.snapshot.state import Snapshot

        return Snapshot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
