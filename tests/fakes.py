"""Stand-ins for the exit views, for unit tests that drive a device's handler without a vCPU."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeIo:
    """What a port handler reads from an IoExit, and `value` for what it writes back."""

    port: int
    size: int
    is_write: bool
    value: int = 0


@dataclass
class FakeMmio:
    """What an MMIO handler reads from an MmioExit, and `data` for what it writes back."""

    address: int
    length: int
    is_write: bool
    data: bytes = b""
