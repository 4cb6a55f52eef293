"""QEMU isa-debug-exit: writing v ends the run with status (v << 1) | 1; reads return all-ones."""

from __future__ import annotations

from collections.abc import Sequence

from vmm.devices.protocol import Region
from vmm.errors import ConfigError
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from vmm.devices.protocol import PortAccess

DEFAULT_IOBASE = 0xF4  # what kvm-unit-tests and most runners pass (QEMU's own default is 0x501)
DEFAULT_IOSIZE = 4


class IsaDebugExit:
    name = "isa-debug-exit"

    def __init__(self, iobase: int = DEFAULT_IOBASE, iosize: int = DEFAULT_IOSIZE) -> None:
        # QEMU accepts only these widths (its memory region is 1, 2 or 4 bytes wide)
        if iosize not in (1, 2, 4):
            raise ConfigError(f"isa-debug-exit iosize {iosize:#x} must be 1, 2 or 4")
        if not 0 <= iobase <= 0x10000 - iosize:
            raise ConfigError(f"isa-debug-exit iobase {iobase:#x} with iosize {iosize} does not fit in ports 0-0xffff")
        self.iobase = iobase
        self.iosize = iosize

    def regions(self) -> Sequence[Region]:
        return (Region("io", self.iobase, self.iosize, self.handle_io),)

    def handle_io(self, ex: PortAccess) -> Verdict:
        if not ex.is_write:
            ex.value = 0xFFFFFFFF
            return None
        v = ex.value
        # The process status is 8 bits wide, as under QEMU; the report keeps the full value.
        return Stop(((v << 1) | 1) & 0xFF, f"guest wrote {v:#x} to the debug-exit port")
