"""`Machine`: the facade scripts use. It wires the layers and holds no exit policy of its own.

    board   (vmm.board)   file descriptors, RAM and memslots, the port and MMIO buses, the devices
    policy  (vmm.runner.policy)   where each exit goes: infrastructure, participants, your handlers
    runner  (vmm.runner.runner)   the vCPU threads, stops, kicks, timeouts, participants' hooks

Where an exit is handled: `vmm.runner.policy` (its docstring lists the order), the devices on the
buses (`vmm.board.table` places every built-in one), the defaults in `vmm.runner.defaults`.
"""

from __future__ import annotations

import sys

from vmm import layout as L
from vmm.board.board import Board, BoardSpec
from vmm.board.options import DeviceOptions
from vmm.cpu.boot import apply_boot_state
from vmm.cpu.models import CpuRequest
from vmm.cpu.modes import BootArea, CpuMode, boot_state
from vmm.devices.console import Console
from vmm.devices.debugcon import DebugConsole
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.devices.uart import Uart16550
from vmm.devices.ucall import UcallPort
from vmm.errors import ConfigError, RunError, SnapshotHalfRestored, SnapshotHost, SnapshotMismatch
from vmm.inputs import InputFileError, open_output
from vmm.kvm.exits import DirtyRingFullExit, Exit, IntrExit
from vmm.kvm.system import Kvm
from vmm.loaders.image import place_flat
from vmm.runner.observe import ExitStats
from vmm.runner.policy import ExitPolicy
from vmm.runner.runner import Observer, Runner, RunResult
from vmm.verdict import Stop

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any, BinaryIO, NoReturn, TextIO

    from vmm.board.options import Platform
    from vmm.debug.events import DebugEvents, DebugHandler
    from vmm.debug.watch import Watchpoints
    from vmm.msr.events import MsrExits, MsrHandler, MsrSpec
    from vmm.runner.policy import Handler
    from vmm.runner.records import ExitRecorder
    from vmm.snapshot.dirty import DirtyTracker
    from vmm.snapshot.hooks import SnapshotHooks
    from vmm.snapshot.state import MsrLists, Snapshot, SppMasks
    from vmm.snapshot.trigger import Trigger
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
        pci_testdev: bool = False,
        com1: bool = True,
        pit: bool = True,
        pit_reinject: bool = True,
        rtc_localtime: bool = False,
        cpu: CpuRequest | None = None,
        dirty_ring: bool = False,
    ) -> None:
        self.log = log if log is not None else sys.stderr
        self.strict = strict
        self.console = Console(console if console is not None else sys.stdout.buffer)
        devices = DeviceOptions(
            platform, smp, debug_exit, testdev, strict, com1=com1, pci_testdev=pci_testdev, rtc_localtime=rtc_localtime
        )
        spec = BoardSpec(
            mem_size, smp, irqchip, pit=pit, pit_reinject=pit_reinject, cpu=cpu or CpuRequest(), devices=devices,
            dirty_ring=dirty_ring,
        )
        self.board = Board(spec, console=self.console, log=self.log, kvm=kvm)
        self.kvm = self.board.kvm
        self.vm = self.board.vm
        self.memory = self.board.memory
        self.vcpus = self.board.vcpus
        self.vcpu = self.vcpus[0]  # the boot processor
        self.runner = Runner(self.vcpus, self.memory)
        self.control = self.runner.control
        if self.board.suspend is not None:
            self.board.suspend.should_stop = self.stop_requested
            self.board.suspend.pause_others = self.control.others_paused
            self.runner.power_button = self.board.suspend.press_power_button
        self.policy = ExitPolicy(
            self.board.ports, self.board.mmio, on_interrupt=self.runner.on_interrupt, strict=strict, note=self._note
        )
        if dirty_ring:
            slots = self.board.slots
            self.policy.on_exit(DirtyRingFullExit, lambda ex: slots.ring_full(ex.vcpu))
        self.stats: ExitStats | None = None
        self.trace: ExitRecorder | None = None  # vmm.runner.trace.ExitTrace
        self.timeline: ExitRecorder | None = None  # vmm.runner.timeline.ExitTimeline
        self.spp: Spp | None = None
        self.observers: list[Observer] = []  # wrap the exit policy, after statistics and tracing
        self._snapshot_hooks: SnapshotHooks | None = None  # made at first use: most runs take no snapshot
        self._msrs: MsrLists | None = None  # made at the first snapshot (the snapshot code loads then)
        self._dirty: DirtyTracker | None = None
        self.reset_seconds = (0.0, 0.0, 0.0)  # the last reset's memory, vCPU/VM and device time
        self._pit_to_restart: bytes | None = None  # a restored PIT's state, set again when the run starts
        self._half_restored: str | None = None  # why the machine refuses to run (a failed restore)
        self.msr: MsrExits | None = None
        self.debug: DebugEvents | None = None
        self.watchpoints: Watchpoints | None = None
        self.gdb: Any = None
        self.console_monitor: Any = None

    # --- what the board holds -------------------------------------------------------------
    @property
    def snapshot_hooks(self) -> SnapshotHooks:
        """The state hooks snapshots save and restore (handlers' and policies' own state)."""
        if self._snapshot_hooks is None:
            from vmm.snapshot.hooks import SnapshotHooks

            self._snapshot_hooks = SnapshotHooks()
        return self._snapshot_hooks

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

    def on_msr(
        self, msrs: MsrSpec, handler: MsrHandler | None = None, *, reads: bool = True, writes: bool = True
    ) -> None:
        """Send the guest's RDMSR (`reads`) and WRMSR (`writes`) of `msrs` (an index, a `range`, or
        an inclusive (first, last) pair) to `handler`; see `vmm.msr.events` for its answers. With
        no handler the accesses happen as in the kernel, and are traced and counted. Every other
        MSR stays in the kernel."""
        if self.msr is None:
            from vmm.msr.events import MsrExits

            self.msr = MsrExits(self.vm, self.policy)
        self.msr.add(msrs, handler, reads=reads, writes=writes)

    # --- breakpoints, watchpoints, steps (vmm.debug.events: what works at which CPL here) --------
    def _debug_events(self) -> DebugEvents:
        if self.gdb is not None:
            raise ConfigError(
                "breakpoints and steps from Python cannot be used with -gdb: both would program the same "
                "debug registers and single-step flag (watchpoints can: m.watch)"
            )
        if self.debug is None:
            from vmm.debug.events import DebugEvents

            self.debug = DebugEvents(self.vcpus, self.policy, self.memory)
            self.runner.attach(self.debug)
        return self.debug

    def on_breakpoint(self, gva: int, handler: DebugHandler) -> int:
        """Call `handler(event)` before the instruction at guest-virtual `gva` runs (a debug-register
        slot; CPL-0 code only on this host). Returns the slot for `remove_debug`."""
        return self._debug_events().on_breakpoint(gva, handler)

    def _watchpoints(self) -> Watchpoints:
        if self.watchpoints is None:
            from vmm.debug.watch import Watchpoints

            self.watchpoints = Watchpoints(self.enable_spp, self.vcpus, self.memory)
        return self.watchpoints

    def watch(self, gva: int, length: int, kind: str, handler: DebugHandler, *, vcpu: int = 0) -> int:
        """Call `handler(event)` after every guest write that changes or stores into [gva, gva +
        length) (kind "w"; reads cannot be watched here), at any CPL: the SPP engine traps the
        sub-pages (vmm.debug.watch). `gva` is translated through vCPU `vcpu`'s page tables now.
        Returns an id for `remove_watch`."""
        return self._watchpoints().add(gva, length, kind, handler, vcpu)

    def remove_watch(self, wid: int) -> None:
        self._watchpoints().remove(wid)

    def step(self, handler: DebugHandler, vcpu: int = 0) -> None:
        """Call `handler(event)` after vCPU `vcpu`'s next instruction (call again from it to go on)."""
        self._debug_events().step(handler, vcpu)

    def remove_debug(self, slot: int) -> None:
        self._debug_events().remove(slot)

    def enable_gdb(self, address: str = "tcp::1234", *, wait: bool = False) -> Any:
        """Listen for gdb at `address` (QEMU's -gdb spellings); `wait`: stop before the first
        instruction until the debugger continues (QEMU's -S)."""
        from vmm.gdb.stub import GdbStub

        if self.debug is not None:
            raise ConfigError(
                "-gdb cannot be used with breakpoints or steps set from Python: both would program the same "
                "debug registers and single-step flag (watchpoints can: m.watch)"
            )
        stub = GdbStub(
            self.vcpus, self.policy, self.memory, address, wait=wait,
            watchpoints=self._watchpoints, spp_masks=lambda: self.spp.masks() if self.spp is not None else None,
        )  # fmt: skip
        self.runner.attach(stub)
        self.gdb = stub
        return stub

    def _monitor(self) -> Any:
        if self.console_monitor is None:
            from vmm.debug.console import MonitorConsole

            self.console_monitor = MonitorConsole(
                self.vcpus, self.memory, lambda: self.spp.masks() if self.spp is not None else None,
                power_button=self.board.suspend,
            )
            self.runner.attach(self.console_monitor)
        return self.console_monitor

    def monitor_command(self, line: str) -> str:
        """One monitor command (`info registers`, `x/4xg ADDR`, `xp`, `info spp`, `stop`, `cont`,
        `quit`, ...; vmm.debug.console), from any thread, while the guest runs or not."""
        return str(self._monitor().execute(line))

    def enable_monitor(self, spec: str, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        """QEMU's -monitor: `stdio` (commands from stdin, answers on stdout) or
        `unix:PATH,server,nowait` (a socket that takes one connection at a time); `none` is none."""
        from vmm.debug.console import parse_monitor_address

        kind, path = parse_monitor_address(spec)
        if kind == "stdio":
            self._monitor().serve_stream(stdin or sys.stdin, stdout or sys.stdout)
        elif kind == "unix" and path is not None:
            self._monitor().serve_unix(path)

    def remove_io(self, first: int, count: int) -> None:
        self.board.ports.remove(first, count)

    def remove_mmio(self, base: int, size: int) -> None:
        self.board.mmio.remove(base, size)

    def _note(self, kind: str, **fields: Any) -> None:
        for recorder in (self.trace, self.timeline):
            if recorder is not None:
                recorder.note(kind, **fields)

    # --- loading ----------------------------------------------------------------------------
    def load_flat(
        self, image: bytes, mode: CpuMode = CpuMode.LONG, load: int | None = None, entry: int | None = None
    ) -> None:
        """Copy a flat binary into RAM and set the boot vCPU up to enter it in `mode`."""
        place = place_flat(len(image), mode, self.mem_size, load, entry)
        self.memory.write(place.load, image)
        self.boot(mode, place.entry, stack=place.stack, area=place.area)

    def boot(
        self,
        mode: CpuMode,
        entry: int,
        *,
        stack: int | None = None,
        regs: dict[str, int] | None = None,
        area: BootArea | None = None,
    ) -> None:
        """Write the boot structures for `mode` at `area` (vmm.layout's default place when None)
        and point the boot vCPU at `entry`; `regs` sets general registers on top (a multiboot
        loader's EAX and EBX)."""
        if stack is None:
            stack = entry if mode is CpuMode.REAL else L.KERNEL_STACK
        apply_boot_state(self.vcpu, self.memory, boot_state(mode, entry, stack, area))
        if regs:
            r = self.vcpu.get_regs()
            for name, value in regs.items():
                setattr(r, name, value)
            self.vcpu.set_regs(r)

    # --- running ----------------------------------------------------------------------------
    def enable_spp(self, backend: str = "software", abi: str | None = None, *, kernel_ioctl: Any = None) -> Spp:
        """Turn on sub-page protection with the named backend (see vmm.spp.choice). `kernel_ioctl`
        stands in for the ioctl of a kernel with the SPP patch, where none runs (tests)."""
        from vmm.spp.attach import MachineHost, attach_spp

        if self.spp is None:
            host = MachineHost(self.board, self.policy, self.runner, self._note)
            self.spp = attach_spp(host, self.ucall, backend, abi, kernel_ioctl=kernel_ioctl)
        return self.spp

    def _spp_for(self, snap: Snapshot) -> None:
        """SPP on with the backend the snapshot was taken with, or a refusal before any change."""
        wanted = snap.spp_backend or "software"
        if self.spp is not None:
            if self.spp.backend_name != wanted:
                raise SnapshotMismatch(
                    f"snapshot was taken with the {wanted} SPP backend, this machine has {self.spp.backend_name}"
                )
            return
        if wanted == "software":
            self.enable_spp()
            return
        try:
            self.enable_spp("kernel", wanted.removeprefix("kernel:"))
        except ConfigError as e:
            raise SnapshotHost(
                f"snapshot was taken with the {wanted} SPP backend, which this host cannot give: {e}"
            ) from None

    def stop_requested(self) -> bool:
        return self.control.pending is not None

    def press_power_button(self) -> None:
        """The ACPI power button (from any thread; the CLI presses it on SIGUSR2): wakes a machine
        suspended to RAM, else sets PWRBTN_STS. Only the pc platform has one."""
        if self.board.suspend is None:
            raise ConfigError("this machine has no power button (it comes with -machine pc)")
        self.board.suspend.press_power_button()

    def kick(self) -> None:
        """Bring every vCPU out of KVM_RUN to its exit handlers soon (from any thread)."""
        self.control.kick()

    def stop(self, status: int, reason: str) -> None:
        """Ask every vCPU's loop to end; safe from signal handlers and other threads."""
        self.control.request_stop(Stop(status, reason))

    def run(self, timeout: float | None = None, *, handle_signals: bool = False) -> RunResult:
        """Run every vCPU until one stops. `handle_signals`: Ctrl-C and SIGTERM end the run with
        a result instead of raising (the CLI asks for it)."""
        if self._half_restored is not None:
            raise SnapshotHalfRestored(f"{self._half_restored}: restore a snapshot before running the machine")
        recorders = [(what, r) for what, r in (("trace", self.trace), ("timeline", self.timeline)) if r is not None]
        watching: list[ExitStats | ExitRecorder] = [r for _, r in recorders]
        if self.stats is not None:
            watching.insert(0, self.stats)
        observers: list[Observer] = ([self.stats.wrap] if self.stats is not None else []) + self.observers
        loop = None
        if recorders:  # loaded only for a trace or a timeline: a plain run's start-up skips it
            from vmm.runner.records import recording_loop

            loop = recording_loop([r.put for _, r in recorders])
        if self.spp is not None:
            for o in watching:
                self.spp.watch(o.on_spp)
        if self._pit_to_restart is not None:
            self._restart_pit()
        for _, r in recorders:
            r.start()
        try:
            result = self.runner.run(
                self.policy.handle, timeout=timeout, handle_signals=handle_signals, observers=observers,
                routes=self.policy.routes, loop=loop,
            )  # fmt: skip
        finally:
            self.console.flush()
            for what, r in recorders:
                lost = r.finish(what)
                if lost is not None:
                    self.log.write(f"pyvmm: {lost}\n")
        summary = self.board.notices.summary()
        if summary is not None:
            self.log.write(f"pyvmm: {summary}\n")
        return result

    # --- snapshots ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The whole state of the stopped machine (see `vmm.snapshot.state`). Call it between runs;
        a vCPU whose last exit still has a completion pending in KVM is first brought to the end
        of that instruction (KVM_RUN with immediate_exit: no new guest instruction runs)."""
        self._check_stopped("snapshot")
        self._settle()
        return self._capture()

    def _capture(self) -> Snapshot:
        from vmm.snapshot.state import MsrLists, capture

        if self._msrs is None:
            self._msrs = MsrLists()
        return capture(self.board, self._snapshot_spp(), self.snapshot_hooks, self._msrs)

    def _snapshot_spp(self) -> SppMasks | None:
        """The SPP masks snapshots see: without the watchpoints' pages, which belong to the
        monitor's current watches (like handlers) and are neither saved nor put back."""
        if self.spp is None or self.watchpoints is None or not self.watchpoints.owned:
            return self.spp
        from vmm.debug.watch import MasksWithoutWatches

        return MasksWithoutWatches(self.spp, self.watchpoints)

    def restore(self, snap: Snapshot) -> None:
        """Put the machine back in the state `snap` holds (all of RAM is copied). KVM may refuse
        a piece of the state only when it is set (an MSR value, an event): the machine's own
        state is captured first and put back if anything fails, so a failed restore leaves the
        machine as it was (SnapshotHost, status 48), or, if even that fails, refusing to run
        (SnapshotHalfRestored, status 50)."""
        self._restore(snap, rollback=True)

    def _restore(self, snap: Snapshot, *, rollback: bool) -> None:
        from vmm.snapshot.state import check_fits, check_layout, restore

        self._check_stopped("restore")
        check_fits(self.board, snap)
        if snap.spp is not None:
            self._spp_for(snap)
        before = None
        if rollback:
            self._drop_pending()  # a completion left in KVM would land in either state
            before = self._capture()
        if self._dirty is not None:
            self._dirty.disarm()
        try:
            restore(self.board, snap, self._snapshot_spp(), self.snapshot_hooks)
            if self.watchpoints is None:
                # watches set or removed since the snapshot change the read-only slots legitimately
                check_layout(self.board, snap)
        except BaseException as e:
            if before is None:
                raise
            self._put_back(before, e)
        self._half_restored = None
        self._pit_to_restart = snap.vm.pit

    def _put_back(self, before: Snapshot, error: BaseException) -> NoReturn:
        """After `error` in a restore: the state from before it, or the machine refuses to run."""
        from vmm.errors import KvmCallFailed, KvmSetupError
        from vmm.snapshot.state import restore

        try:
            restore(self.board, before, self._snapshot_spp(), self.snapshot_hooks)
        except BaseException as again:
            self._half_restored = f"a restore failed ({error}) and putting the machine back failed too ({again})"
            raise SnapshotHalfRestored(f"{self._half_restored}: the machine cannot run") from None
        if isinstance(error, KvmCallFailed | KvmSetupError):
            raise SnapshotHost(
                f"this host's KVM refuses the snapshot's state: {error}; the machine is as it was before the restore"
            ) from None
        raise error

    def _restart_pit(self) -> None:
        """KVM_SET_PIT2 again with the restored state, just before the guest runs. The in-kernel
        PIT counts from the restore on; with re-injection on (KVM's default, QEMU's
        lost_tick_policy=delay) every period that passes before the first KVM_RUN is a tick
        owed, and they would all arrive back to back. Setting the state again restarts the
        counts from now and drops the owed ticks (KVM clears them with the reload)."""
        pit, self._pit_to_restart = self._pit_to_restart, None
        assert pit is not None
        self.board.vm.set_pit2(pit)

    def reset(self, snap: Snapshot) -> None:
        """`restore`, fast: from the second reset to the same snapshot on, only the pages written
        since the last one are copied back (KVM's dirty log and the monitor's own writes)."""
        from time import perf_counter

        from vmm.snapshot.dirty import DirtyTracker
        from vmm.snapshot.ram import restore_pages
        from vmm.snapshot.state import restore_devices, restore_vcpus_and_vm

        self._check_stopped("reset")
        self._drop_pending()
        tracker = self._dirty
        if tracker is None or tracker.baseline is not snap or self._half_restored is not None:
            self.restore(snap)
            tracker = self._dirty = DirtyTracker(self.board.slots, self.memory)
            tracker.arm(snap)
            return
        t0 = perf_counter()
        try:
            restore_pages(self.memory, snap.ram, tracker.take())
            t1 = perf_counter()
            restore_vcpus_and_vm(self.board, snap)
            self._pit_to_restart = snap.vm.pit
            t2 = perf_counter()
            restore_devices(self.board, snap, self._snapshot_spp(), self.snapshot_hooks)
        except BaseException as e:
            # The same bytes KVM took back whole at the first reset to this snapshot (a restore,
            # with its rollback): a failure now has no state from before to return to, and a
            # rollback point per reset would double its ioctls.
            tracker.disarm()
            self._dirty = None
            self._half_restored = f"a fast reset failed midway ({e})"
            raise SnapshotHalfRestored(f"{self._half_restored}: the machine cannot run until a restore succeeds") from e
        self.reset_seconds = (t1 - t0, t2 - t1, perf_counter() - t2)

    @classmethod
    def from_snapshot(
        cls,
        source: str | Snapshot,
        *,
        mem_size: int | None = None,
        smp: int | None = None,
        console: BinaryIO | None = None,
        log: TextIO | None = None,
        strict: bool | None = None,
        kvm: Kvm | None = None,
    ) -> Machine:
        """A new machine in the state of a snapshot (a file path or a `Snapshot`). `mem_size` and
        `smp`, when given, must agree with the snapshot. Nothing is left half-restored: on any
        failure the new machine is closed before the error propagates."""
        from vmm.snapshot.state import Snapshot, check_cpuid

        snap = Snapshot.load(source) if isinstance(source, str) else source
        spec = snap.spec
        if mem_size is not None and mem_size != spec["mem_size"]:
            raise SnapshotMismatch(f"snapshot has RAM size {spec['mem_size']:#x}, the options ask for {mem_size:#x}")
        if smp is not None and smp != spec["smp"]:
            raise SnapshotMismatch(f"snapshot has vCPU count {spec['smp']}, the options ask for {smp}")
        debug_exit = tuple(spec["debug_exit"]) if spec["debug_exit"] is not None else None
        m = cls(
            spec["mem_size"], console=console, log=log, strict=spec["strict"] if strict is None else strict, kvm=kvm,
            smp=spec["smp"], irqchip=spec["irqchip"], platform=spec["platform"],
            debug_exit=debug_exit, testdev=spec["testdev"],
        )  # fmt: skip
        try:
            check_cpuid(m.board, snap)
            for vcpu, vs in zip(m.vcpus, snap.vcpus, strict=True):
                vcpu.set_cpuid_raw(vs.cpuid)  # the guest goes on seeing the CPUID it saw
            m._restore(snap, rollback=False)  # a new machine has no state to go back to: it is closed
        except BaseException as e:
            m.close()
            if isinstance(e, ConfigError | SnapshotHost | SnapshotMismatch):
                raise
            from vmm.errors import KvmCallFailed

            if isinstance(e, KvmCallFailed):
                raise SnapshotHost(f"this host's KVM refuses the snapshot's state: {e}") from None
            raise
        return m

    def snapshot_at(self, spec: str) -> Trigger:
        """Stop the next run at a point named like the CLI's --snapshot-at (sync:N, exits:N,
        spp:N), with every vCPU at a clean point; `trigger.fired()` says whether it did."""
        from vmm.devices.ucall import SYNC
        from vmm.snapshot.trigger import Trigger, parse_snapshot_at

        trigger = Trigger(parse_snapshot_at(spec), self.control)
        if trigger.at.kind == "sync":
            self.ucall.handlers[SYNC] = trigger.counting(self.ucall.handlers[SYNC])
        elif trigger.at.kind == "exits":
            self.observers.append(trigger.counting)
        else:
            spp = self.enable_spp() if self.spp is None else self.spp
            spp.policies.insert(0, trigger.spp_policy)
        return trigger

    def _check_stopped(self, what: str) -> None:
        if self.runner.running or self.control.running():
            raise RunError(f"cannot {what} while the machine runs: stop the run first")

    def _drop_pending(self) -> None:
        """Let KVM finish what the last exits left pending, whatever it is: the state is about
        to be overwritten, but a completion left in KVM would be applied to the restored one."""
        for vcpu in self.vcpus:
            for _ in range(16):
                if isinstance(vcpu.run_immediate(), IntrExit):
                    break
            vcpu.clear_stop()

    def _settle(self) -> None:
        for vcpu in self.vcpus:
            for _ in range(16):
                ex = vcpu.run_immediate()
                if isinstance(ex, IntrExit):
                    break
                if self.policy.handle(ex) is not None:
                    raise RunError(f"vCPU {vcpu.index} cannot be brought to a clean point: {ex!r} ends the run")
            else:
                raise RunError(f"vCPU {vcpu.index} did not reach a clean point within 16 exits")
            vcpu.clear_stop()

    def close(self) -> None:
        self.console.flush()
        for recorder in (self.trace, self.timeline):
            if recorder is not None:
                recorder.close()  # its trailer (a timeline's closing bracket), after the last run
        if self.runner.running or self.control.running():
            return  # a vCPU thread still uses the kvm_run pages and RAM: leave them mapped
        self.board.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _name_of(handler: Handler) -> str:
    return f"handler {getattr(handler, '__qualname__', None) or type(handler).__name__}"


def open_trace(path: str, what: str = "trace file") -> int:
    """The descriptor of a file a run writes (a trace, a timeline, statistics): the writer writes
    whole lines to it with os.write. `what` names it in the error."""
    try:
        return open_output(path)
    except InputFileError as e:
        raise ConfigError(f"{what} {path!r} {e}") from None
