"""Port 0x80 (POST codes, and the classic I/O delay), port 0xED (the other delay port) and the DMA
page registers at 0x81-0x8F that share port 0x80's block.

Linux and many firmwares write port 0x80 (or 0xED) between slow device accesses just to wait;
without a handler each of those writes is an "unhandled port" note, or a stop under --strict.
Reads of 0x80 and 0xED return 0xFF, as QEMU returns for both. (A real chipset usually returns the
last POST code at 0x80; QEMU's answer is the one guests are tested against.)

The page registers keep what is written, as the 74LS612 on a PC does and QEMU's DMA controller does
for the registers it maps; no DMA transfer ever takes place.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmm.devices.protocol import Region

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import PortAccess

POST_PORT = 0x80
DELAY_PORT = 0xED
PAGE_FIRST = 0x81
PAGE_COUNT = 15  # 0x81-0x8f


class PostPorts:
    """Sinks for POST codes and I/O delays; the codes are kept for tests and debugging."""

    name = "post"

    def __init__(self, keep: int = 64) -> None:
        self.codes: list[int] = []  # the most recent POST codes written to port 0x80
        self.keep = keep
        self.delay_writes = 0

    def write(self, port: int, value: int) -> None:
        if port == POST_PORT:
            self.codes.append(value & 0xFF)
            del self.codes[: -self.keep]
        else:
            self.delay_writes += 1

    def read(self, port: int) -> int:
        return 0xFF

    def handle_io(self, ex: PortAccess) -> None:
        if ex.is_write:
            self.write(ex.port, ex.value)
        else:
            ex.value = 0xFFFFFFFF  # every byte of a wider read is 0xff as well

    def regions(self) -> Sequence[Region]:
        return (Region("io", POST_PORT, 1, self.handle_io), Region("io", DELAY_PORT, 1, self.handle_io))


class DmaPageRegisters:
    """Fifteen byte latches at 0x81-0x8f."""

    name = "dma-page-registers"

    def __init__(self) -> None:
        self.regs = bytearray(PAGE_COUNT)

    def save_state(self) -> dict[str, Any]:
        return {"regs": bytes(self.regs).hex()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.regs[:] = bytes.fromhex(state["regs"])

    def write(self, port: int, value: int) -> None:
        self.regs[port - PAGE_FIRST] = value & 0xFF

    def read(self, port: int) -> int:
        return self.regs[port - PAGE_FIRST]

    def handle_io(self, ex: PortAccess) -> None:
        # a wide access covers consecutive registers, low byte first; bytes past 0x8f float high
        if ex.is_write:
            for i in range(ex.size):
                if ex.port + i < PAGE_FIRST + PAGE_COUNT:
                    self.write(ex.port + i, ex.value >> (8 * i))
        else:
            value = 0
            for i in range(ex.size):
                port = ex.port + i
                value |= (self.read(port) if port < PAGE_FIRST + PAGE_COUNT else 0xFF) << (8 * i)
            ex.value = value

    def regions(self) -> Sequence[Region]:
        return (Region("io", PAGE_FIRST, PAGE_COUNT, self.handle_io),)
