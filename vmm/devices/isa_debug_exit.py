"""QEMU isa-debug-exit: writing v ends the run with status (v << 1) | 1; reads return all-ones."""

from __future__ import annotations

from vmm.kvm.exits import IoExit
from vmm.verdict import Stop, Verdict


class IsaDebugExit:
    def handle_io(self, ex: IoExit) -> Verdict:
        if not ex.is_write:
            ex.value = 0xFFFFFFFF
            return None
        v = ex.value
        # The process status is 8 bits wide, as under QEMU; the report keeps the full value.
        return Stop(((v << 1) | 1) & 0xFF, f"guest wrote {v:#x} to the debug-exit port")
