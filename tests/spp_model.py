"""The reference model of SPP semantics the engine is checked against: deliberately naive.

Per page a 32-bit mask (bit i: bytes [128*i, 128*i + 127] writable). A write lands whole if every
byte it touches lies in a writable sub-page, else nothing of it lands.
"""

from __future__ import annotations

PAGE = 4096
SUB = 128


class SppModel:
    def __init__(self, base: int, memory: bytes) -> None:
        self.base = base
        self.mem = bytearray(memory)
        self.masks: dict[int, int] = {}

    def writable(self, addr: int) -> bool:
        page, off = addr - addr % PAGE, addr % PAGE
        return bool(self.masks.get(page, 0xFFFFFFFF) >> (off // SUB) & 1)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.mem[addr - self.base : addr - self.base + n])

    def write(self, addr: int, data: bytes) -> bool:
        """Apply a guest write; True if it landed."""
        if all(self.writable(a) for a in range(addr, addr + len(data))):
            self.mem[addr - self.base : addr - self.base + len(data)] = data
            return True
        return False
