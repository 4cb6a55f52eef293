"""What a device and its handlers are typed against: small protocols, so a test's fake access
type-checks as well as the real exit views (`vmm.kvm.exits.IoExit`, `MmioExit`) do.

A device names itself and lists the address ranges it answers (`regions()`); the board table
(`vmm.board.table`) decides which devices a machine has and places them on the buses. A handler
sees the access with `offset` counted from the device's base, whatever address it was placed at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vmm.record import TupleRecord
from vmm.verdict import Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time
    from typing import Any, Literal, Protocol

    class GuestRam(Protocol):
        """What a device may do with guest RAM (`vmm.board.memory.GuestMemory`): every access is
        checked against RAM and raises GuestMemoryError outside it."""

        def read(self, gpa: int, length: int) -> bytes: ...
        def view(self, gpa: int, length: int) -> memoryview: ...
        def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None: ...
        def read_cstring(self, gpa: int, limit: int = 4096) -> str: ...

    class PortAccess(Protocol):
        """One port access (one element of a string I/O instruction at a time)."""

        port: int  # the absolute port
        offset: int  # port - the device's base
        size: int  # 1, 2 or 4 bytes
        is_write: bool

        @property
        def vcpu_index(self) -> int: ...

        @property
        def value(self) -> int: ...
        @value.setter
        def value(self, v: int) -> None: ...

    class MmioAccess(Protocol):
        offset: int  # address - the device's base

        @property
        def address(self) -> int: ...
        @property
        def length(self) -> int: ...
        @property
        def is_write(self) -> bool: ...
        @property
        def data(self) -> bytes: ...
        @data.setter
        def data(self, raw: bytes) -> None: ...
        @property
        def value(self) -> int: ...
        @value.setter
        def value(self, v: int) -> None: ...

    class Stateful(Protocol):
        """A device whose registers a snapshot saves: `save_state` returns JSON-able values (bytes
        as hex strings), `load_state` puts them back."""

        def save_state(self) -> dict[str, Any]: ...
        def load_state(self, state: dict[str, Any]) -> None: ...

    PortHandler = Callable[[PortAccess], Verdict]
    MmioHandler = Callable[[MmioAccess], Verdict]

    Space = Literal["io", "mmio"]


class Region(TupleRecord):
    """[start, start + size) in one address space, answered by `handler`; offsets count from
    `base` (default: `start`)."""

    space: Space
    start: int
    size: int
    handler: Callable[..., Verdict]
    base: int | None = None


if TYPE_CHECKING:

    class Device(Protocol):
        name: str  # QEMU's name for it where QEMU has the device ("isa-debug-exit", "pc-testdev")

        def regions(self) -> Sequence[Region]: ...
