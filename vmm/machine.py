"""`Machine`: the facade scripts use. It wires the layers and holds no exit policy of its own.

    board   (vmm.board)   file descriptors, RAM and memslots, the port and MMIO buses, the devices
    policy  (vmm.runner.policy)   where each exit goes: infrastructure, participants, your handlers
    runner  (vmm.runner.runner)   the vCPU threads, stops, kicks, timeouts, participants' hooks

Where an exit is handled: `vmm.runner.policy` (its docstring lists the order), the devices on the
buses (`vmm.board.table` places every built-in one), the defaults in `vmm.runner.defaults`.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TextIO

from vmm import layout as L
from vmm.board.board import Board, BoardSpec
from vmm.board.table import DeviceOptions, Platform
from vmm.cpu.boot import apply_boot_state
from vmm.cpu.modes import CpuMode, boot_state
from vmm.devices.console import Console
from vmm.devices.debugcon import DebugConsole
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.devices.uart import Uart16550
from vmm.devices.ucall import UcallPort
from vmm.errors import ConfigError
from vmm.inputs import InputFileError, open_output
from vmm.kvm.exits import Exit
from vmm.kvm.system import Kvm
from vmm.loaders.image import place_flat
from vmm.runner.observe import ExitStats, ExitTrace
from vmm.runner.policy import ExitPolicy, Handler
from vmm.runner.runner import Runner, RunResult
from vmm.verdict import Stop

if TYPE_CHECKING:
    from vmm.spp.controller import Spp

__all__ = ["Machine", "RunResult"]


class Machine:
    def __init__(
        self,
        mem_size: int = L.DEFAULT_MEM,
        *,
        console: BinaryIO | None = None,
        log: TextIO | None = None,
        strict: bool = False,
        kvm: Kvm | None = None,
        smp: int = 1,
        irqchip: bool = False,
        platform: Platform = "minimal",
        debug_exit: tuple[int, int] | None = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE),
        testdev: bool = False,
    ) -> None:
        self.log = log if log is not None else sys.stderr
        self.strict = strict
        self.console = Console(console if console is not None else sys.stdout.buffer)
        spec = BoardSpec(mem_size, smp, irqchip, DeviceOptions(platform, smp, debug_exit, testdev, strict))
        self.board = Board(spec, console=self.console, log=self.log, kvm=kvm)
        self.kvm = self.board.kvm
        self.vm = self.board.vm
        self.memory = self.board.memory
        self.vcpus = self.board.vcpus
        self.vcpu = self.vcpus[0]  # the boot processor
        self.runner = Runner(self.vcpus, self.memory)
        self.control = self.runner.control
        self.policy = ExitPolicy(
            self.board.ports, self.board.mmio, on_interrupt=self.runner.on_interrupt, strict=strict, note=self._note
        )
        self.stats: ExitStats | None = None
        self.trace: ExitTrace | None = None
        self.spp: Spp | None = None

    # --- what the board holds -------------------------------------------------------------
    @property
    def mem_size(self) -> int:
        return self.board.mem_size

    @property
    def irqchip(self) -> bool:
        return self.board.irqchip

    def _device(self, kind: type) -> Any:
        device = self.board.device(kind)
        if device is None:
            raise ConfigError(f"this machine has no {kind.__name__}")
        return device

    @property
    def uart(self) -> Uart16550:
        return self._device(Uart16550)

    @property
    def debugcon(self) -> DebugConsole:
        return self._device(DebugConsole)

    @property
    def ucall(self) -> UcallPort:
        return self._device(UcallPort)

    @property
    def debug_exit(self) -> IsaDebugExit | None:
        device = self.board.device(IsaDebugExit)
        return device if isinstance(device, IsaDebugExit) else None

    # --- the public handler API --------------------------------------------------------------
    def on_exit(self, kind: type[Exit] | int, handler: Handler) -> None:
        """Handle every exit of `kind`; replaces your previous handler and the built-in default."""
        self.policy.on_exit(kind, handler)

    def on_io(self, first: int, count: int, handler: Handler, *, replace: bool = False) -> None:
        """Handle ports [first, first + count). Over a port something already answers (a built-in
        device, an earlier handler) this is refused unless `replace=True`."""
        self.board.ports.insert(first, count, handler, name=_name_of(handler), replace=replace)

    def on_mmio(self, base: int, size: int, handler: Handler, *, replace: bool = False) -> None:
        """Handle guest-physical [base, base + size) where no RAM backs it; overlaps as on_io."""
        self.board.mmio.insert(base, size, handler, name=_name_of(handler), replace=replace)

    def remove_io(self, first: int, count: int) -> None:
        self.board.ports.remove(first, count)

    def remove_mmio(self, base: int, size: int) -> None:
        self.board.mmio.remove(base, size)

    def _note(self, kind: str, **fields: Any) -> None:
        if self.trace is not None:
            self.trace.note(kind, **fields)

    # --- loading ----------------------------------------------------------------------------
    def load_flat(
        self, image: bytes, mode: CpuMode = CpuMode.LONG, load: int | None = None, entry: int | None = None
    ) -> None:
        """Copy a flat binary into RAM and set the boot vCPU up to enter it in `mode`."""
        place = place_flat(len(image), mode, self.mem_size, load, entry)
        self.memory.write(place.load, image)
        self.boot(mode, place.entry, stack=place.stack)

    def boot(self, mode: CpuMode, entry: int, *, stack: int | None = None, regs: dict[str, int] | None = None) -> None:
        """Write the boot structures for `mode` and point the boot vCPU at `entry`; `regs` sets
        general registers on top (a multiboot loader's EAX and EBX)."""
        if stack is None:
            stack = entry if mode is CpuMode.REAL else L.KERNEL_STACK
        apply_boot_state(self.vcpu, self.memory, boot_state(mode, entry, stack))
        if regs:
            r = self.vcpu.get_regs()
            for name, value in regs.items():
                setattr(r, name, value)
            self.vcpu.set_regs(r)

    # --- running ----------------------------------------------------------------------------
    def enable_spp(self, backend: str = "software", abi: str | None = None) -> Spp:
        """Turn on sub-page protection with the named backend (see vmm.spp.choice)."""
        from vmm.spp.attach import MachineHost, attach_spp

        if self.spp is None:
            host = MachineHost(self.board, self.policy, self.runner, self._note)
            self.spp = attach_spp(host, self.ucall, backend, abi)
        return self.spp

    def stop_requested(self) -> bool:
        return self.control.pending is not None

    def kick(self) -> None:
        """Bring every vCPU out of KVM_RUN to its exit handlers soon (from any thread)."""
        self.control.kick()

    def stop(self, status: int, reason: str) -> None:
        """Ask every vCPU's loop to end; safe from signal handlers and other threads."""
        self.control.request_stop(Stop(status, reason))

    def run(self, timeout: float | None = None, *, handle_signals: bool = False) -> RunResult:
        """Run every vCPU until one stops. `handle_signals`: Ctrl-C and SIGTERM end the run with
        a result instead of raising (the CLI asks for it)."""
        observers = [o.wrap for o in (self.stats, self.trace) if o is not None]
        try:
            result = self.runner.run(
                self.policy.handle, timeout=timeout, handle_signals=handle_signals, observers=observers,
                route_io=self.policy.route_io,
            )  # fmt: skip
        finally:
            self.console.flush()
        summary = self.board.notices.summary()
        if summary is not None:
            self.log.write(f"pyvmm: {summary}\n")
        return result

    def close(self) -> None:
        self.console.flush()
        if self.runner.running or self.control.running():
            return  # a vCPU thread still uses the kvm_run pages and RAM: leave them mapped
        self.board.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _name_of(handler: Handler) -> str:
    return f"handler {getattr(handler, '__qualname__', None) or type(handler).__name__}"


def open_trace(path: str) -> IO[str]:
    try:
        return open_output(path)
    except InputFileError as e:
        raise ConfigError(f"trace file {path!r} {e}") from None
