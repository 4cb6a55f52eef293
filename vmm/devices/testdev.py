"""QEMU's `pc-testdev`, the ISA test device kvm-unit-tests drive (enable it explicitly).

Its registers, at QEMU's addresses:

  0xe0-0xe3    a 32-bit scratch register; an access of any width reads or writes its byte lanes
               at (port & 3)
  0xe4-0xe7    "flush page": a 32-bit write of a guest-physical address makes the host drop its
               mapping of that page, so the guest's next access to it faults into KVM again
  0xe8-0xeb    the same scratch register, decoded one byte at a time (for split-access tests)
  0x2000-0x2017  one port per ISA IRQ line: writing a non-zero byte raises the line, 0 lowers it
  0xff000000   64 KiB of device memory (MMIO) that reads back what was written

pyvmm differs in one place: port 0xe9 stays the debug console (pyvmm's guests print there), so a
single-byte access to 0xe9 does not reach the scratch register. Accesses that start at 0xe8 (a word
or dword covering 0xe9) do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vmm.devices.protocol import Region

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import MmioAccess, PortAccess

IOPORT = 0xE0
FLUSH_PORT = 0xE4
IOPORT_BYTE = 0xE8
IRQ_BASE = 0x2000
IRQ_COUNT = 24
IOMEM_BASE = 0xFF000000
IOMEM_SIZE = 0x10000
DEBUGCON_PORT = 0xE9  # pyvmm's debug console, which keeps its port (see the module docstring)

PAGE = 4096

IrqLine = Callable[[int, int], None]  # (ISA IRQ number, level 0/1)
FlushPage = Callable[[int], None]  # (page-aligned guest-physical address)


def _lane_mask(offset: int, size: int) -> tuple[int, int]:
    shift = (offset & 3) * 8
    return shift, (((1 << (8 * size)) - 1) << shift) & 0xFFFFFFFF


class PcTestdev:
    """The scratch register, the device memory, and the two actions (IRQ lines, page flush)."""

    name = "pc-testdev"

    def __init__(self, irq_line: IrqLine, flush_page: FlushPage | None = None) -> None:
        self.irq_line = irq_line
        self.flush_page = flush_page
        self.data = 0  # the 32-bit scratch register
        self.iomem = bytearray(IOMEM_SIZE)
        self.flushed: list[int] = []  # pages the guest asked to flush, in order

    # --- scratch register -------------------------------------------------------------------
    def write_reg(self, offset: int, size: int, value: int) -> None:
        shift, mask = _lane_mask(offset, size)
        self.data = (self.data & ~mask) | ((value << shift) & mask)

    def read_reg(self, offset: int, size: int) -> int:
        shift, mask = _lane_mask(offset, size)
        return (self.data & mask) >> shift

    def write_reg_bytes(self, offset: int, size: int, value: int) -> None:
        # the byte-wide decoder splits an access into single bytes, each at its own lane
        for i in range(size):
            self.write_reg(offset + i, 1, value >> (8 * i))

    def read_reg_bytes(self, offset: int, size: int) -> int:
        return sum(self.read_reg(offset + i, 1) << (8 * i) for i in range(size))

    # --- actions ----------------------------------------------------------------------------
    def set_irq(self, irq: int, value: int) -> None:
        if 0 <= irq < IRQ_COUNT:
            self.irq_line(irq, 1 if value else 0)

    def flush(self, gpa: int) -> None:
        page = gpa & ~(PAGE - 1) & 0xFFFFFFFF
        self.flushed.append(page)
        if self.flush_page is not None:
            self.flush_page(page)

    # --- device memory ------------------------------------------------------------------------
    def read_mem(self, offset: int, length: int) -> bytes:
        return bytes(self.iomem[offset : offset + length]).ljust(length, b"\0")

    def write_mem(self, offset: int, data: bytes) -> None:
        data = data[: max(IOMEM_SIZE - offset, 0)]
        self.iomem[offset : offset + len(data)] = data

    # --- snapshots ---------------------------------------------------------------------------
    def save_state(self) -> dict[str, Any]:
        return {"data": self.data, "iomem": bytes(self.iomem).hex()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.data = state["data"]
        self.iomem[:] = bytes.fromhex(state["iomem"])

    # --- I/O plumbing -------------------------------------------------------------------------
    def regions(self) -> Sequence[Region]:
        window = [Region("io", IOPORT, 8, self.handle_io)]  # the scratch register and the flush port
        window += [
            Region("io", port, 1, self.handle_io, base=IOPORT)
            for port in range(IOPORT_BYTE, IOPORT_BYTE + 4)
            if port != DEBUGCON_PORT
        ]
        return (
            *window,
            Region("io", IRQ_BASE, IRQ_COUNT, self.handle_irq_port),
            Region("mmio", IOMEM_BASE, IOMEM_SIZE, self.handle_mmio),
        )

    def handle_irq_port(self, ex: PortAccess) -> None:
        # the IRQ ports take single bytes only, and read as 0
        if not ex.is_write:
            ex.value = 0
        elif ex.size == 1:
            self.set_irq(ex.offset, ex.value & 0xFF)

    def handle_io(self, ex: PortAccess) -> None:
        port = IOPORT + ex.offset
        if FLUSH_PORT <= port < FLUSH_PORT + 4:
            if not ex.is_write:
                ex.value = 0
            elif ex.size == 4 and port == FLUSH_PORT:
                self.flush(ex.value)
        elif IOPORT <= port < IOPORT + 4:
            if ex.is_write:
                self.write_reg(port - IOPORT, ex.size, ex.value)
            else:
                ex.value = self.read_reg(port - IOPORT, ex.size)
        elif ex.is_write:  # IOPORT_BYTE
            self.write_reg_bytes(port - IOPORT_BYTE, ex.size, ex.value)
        else:
            ex.value = self.read_reg_bytes(port - IOPORT_BYTE, ex.size)

    def handle_mmio(self, ex: MmioAccess) -> None:
        if ex.is_write:
            self.write_mem(ex.offset, ex.data)
        else:
            ex.data = self.read_mem(ex.offset, ex.length)
