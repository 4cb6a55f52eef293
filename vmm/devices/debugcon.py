"""The one-port debug console (Bochs/QEMU port 0xe9): bytes written are printed."""

from __future__ import annotations

from collections.abc import Sequence

from vmm.devices.console import Console
from vmm.devices.protocol import Region

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from vmm.devices.protocol import PortAccess

READBACK = 0xE9  # reading the port returns its number, which is how guests detect it


class DebugConsole:
    name = "isa-debugcon"

    def __init__(self, console: Console, port: int = 0xE9) -> None:
        self.console = console
        self.port = port

    def regions(self) -> Sequence[Region]:
        return (Region("io", self.port, 1, self.handle_io),)

    def handle_io(self, ex: PortAccess) -> None:
        if ex.is_write:
            self.console.put(ex.value & 0xFF)
        else:
            ex.value = READBACK
