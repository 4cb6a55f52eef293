"""The one-port debug console (Bochs/QEMU port 0xe9): bytes written are printed."""

from __future__ import annotations

from vmm.devices.console import Console
from vmm.kvm.exits import IoExit

READBACK = 0xE9  # reading the port returns its number, which is how guests detect it


class DebugConsole:
    def __init__(self, console: Console) -> None:
        self.console = console

    def handle_io(self, ex: IoExit) -> None:
        if ex.is_write:
            self.console.put(ex.value & 0xFF)
        else:
            ex.value = READBACK
