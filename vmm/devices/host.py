"""What the platform devices need from a machine: the public handler API and guest RAM.

A structural type rather than `Machine` itself, so a device can be installed on anything that
offers the same calls (unit tests use a small fake; `vmm.machine.Machine` fits as is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from vmm.board.memory import GuestMemory
    from vmm.runner.dispatch import Dispatcher, Handler


class PlatformHost(Protocol):
    memory: GuestMemory
    log: TextIO
    dispatcher: Dispatcher
    vm: Any  # only `irq_line(irq, level)` is used, looked up when an IRQ is raised

    def on_io(self, first: int, count: int, handler: Handler) -> None: ...

    def on_mmio(self, base: int, size: int, handler: Handler) -> None: ...
