"""`Machine`: one VM with its RAM, boot vCPU, devices and the run loop.

Where an exit is handled: `Machine.__init__` registers every built-in handler (exit kinds in
`_install_exit_handlers`, ports in `_install_devices`) through the same `on_exit` / `on_io` /
`on_mmio` calls a user script uses; `run()` is the loop.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TextIO

from kvm_abi import exits as ke
from vmm import layout as L
from vmm.cpu.boot import apply_boot_state
from vmm.cpu.cpuid import cpuid_for_vcpu
from vmm.cpu.modes import CpuMode, boot_state
from vmm.devices.console import Console
from vmm.devices.debugcon import DebugConsole
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.devices.uart import Uart16550
from vmm.devices.ucall import UcallPort
from vmm.errors import ConfigError, ExitStatus, PyvmmError
from vmm.kvm.exits import (
    Exit,
    FailEntryExit,
    ForeignExit,
    HltExit,
    HwUnknownExit,
    InternalErrorExit,
    IntrExit,
    IoExit,
    MmioExit,
    ShutdownExit,
    Unknown,
)
from vmm.kvm.system import Kvm
from vmm.loaders.image import place_flat
from vmm.runner.control import RunControl
from vmm.runner.dispatch import Dispatcher, Handler
from vmm.runner.observe import ExitStats, ExitTrace
from vmm.runner.report import guest_state
from vmm.verdict import Stop, Verdict

if TYPE_CHECKING:
    from vmm.kvm.vcpu import Vcpu
    from vmm.spp.controller import Spp

RFLAGS_IF = 1 << 9
MAX_VCPUS = 64


@dataclass
class RunResult:
    status: int
    reason: str
    exits: int
    seconds: float
    report: str = ""  # guest state and, for handler errors, the traceback

    @property
    def ok(self) -> bool:
        return self.status == 0


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
    ) -> None:
        if mem_size % L.PAGE_SIZE or mem_size < 0x10000:
            raise ConfigError(f"memory size {mem_size:#x} must be a multiple of 4 KiB and at least 64 KiB")
        if mem_size > L.KVM_IDENTITY_MAP_ADDR:
            raise ConfigError(f"memory size {mem_size:#x} is above the 4 GiB hole pyvmm keeps for KVM")
        if not 1 <= smp <= MAX_VCPUS:
            raise ConfigError(f"vCPU count {smp} must be between 1 and {MAX_VCPUS}")
        self.log = log if log is not None else sys.stderr
        self.strict = strict
        self._owns_kvm = kvm is None
        self.kvm = kvm if kvm is not None else Kvm()
        try:
            self._build(mem_size, smp, irqchip, console)
        except BaseException:
            self.close()  # no file descriptor or mapping outlives a machine that failed to build
            raise

    def _build(self, mem_size: int, smp: int, irqchip: bool, console: BinaryIO | None) -> None:
        self.vm = self.kvm.create_vm()
        self.vm.set_tss_addr()
        self.vm.set_identity_map_addr()
        self.vm.add_ram(0, mem_size)
        self.memory = self.vm.memory
        self.mem_size = mem_size
        # APs start by INIT/SIPI through the in-kernel LAPIC, so SMP implies the irqchip
        self.irqchip = irqchip or smp > 1
        if self.irqchip:  # before any vCPU exists, as KVM requires; APs then wait for INIT/SIPI
            self.vm.create_irqchip()
            self.vm.create_pit2()
        self.vcpus = [self.vm.create_vcpu(i) for i in range(smp)]
        for v in self.vcpus:
            v.set_cpuid(cpuid_for_vcpu(self.kvm.supported_cpuid(), v.index))
        self.vcpu = self.vcpus[0]  # the boot processor
        self.control = RunControl(self.vcpus)
        self.control.can_signal = _install_kick_signal()
        self.dispatcher = Dispatcher()
        self.console = Console(console if console is not None else sys.stdout.buffer)
        self.stats: ExitStats | None = None
        self.trace: ExitTrace | None = None
        self.kick_hooks: list[Callable[[Vcpu], Verdict]] = []  # run at every interrupted KVM_RUN
        self.spp: Spp | None = None
        self._install_exit_handlers()
        self._install_devices()

    # --- the public handler API (built-ins use it too) -----------------------------------
    def on_exit(self, kind: type[Exit] | int, handler: Handler) -> None:
        self.dispatcher.on_exit(kind, handler)

    def on_io(self, first: int, count: int, handler: Handler) -> None:
        self.dispatcher.on_io(first, count, handler)

    def on_mmio(self, base: int, size: int, handler: Handler) -> None:
        self.dispatcher.on_mmio(base, size, handler)

    def _install_devices(self) -> None:
        self.uart = Uart16550(self.console, L.COM1_PORT)
        self.debugcon = DebugConsole(self.console)
        self.debug_exit = IsaDebugExit()
        self.ucall = UcallPort(self.memory, self.console, strict=self.strict, log=self.log)
        self.on_io(L.COM1_PORT, 8, self.uart.handle_io)
        self.on_io(L.DEBUGCON_PORT, 1, self.debugcon.handle_io)
        self.on_io(L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE, self.debug_exit.handle_io)
        self.on_io(L.UCALL_PORT, 4, self.ucall.handle_io)
        self.dispatcher.unhandled_io = self._unhandled_io
        self.dispatcher.unhandled_mmio = self._unhandled_mmio

    def _install_exit_handlers(self) -> None:
        self.on_exit(HltExit, self._on_hlt)
        self.on_exit(IntrExit, self._on_intr)
        self.on_exit(
            ShutdownExit,
            lambda ex: Stop(ExitStatus.TRIPLE_FAULT, "guest triple-faulted (KVM_EXIT_SHUTDOWN)", fatal=True),
        )
        self.on_exit(InternalErrorExit, _on_internal_error)
        self.on_exit(FailEntryExit, _on_fail_entry)
        self.on_exit(
            HwUnknownExit,
            lambda ex: Stop(
                ExitStatus.UNHANDLED_EXIT,
                f"KVM could not handle hardware exit {ex.hardware_exit_reason:#x}",
                fatal=True,
            ),
        )
        self.dispatcher.unhandled_exit = _on_unhandled_exit

    # --- built-in exit handlers -----------------------------------------------------------
    def _on_hlt(self, ex: HltExit) -> Verdict:
        regs = ex.vcpu.kvm_run.s.regs.regs
        if ex.vcpu.sync_regs and regs.rflags & RFLAGS_IF:
            return Stop(ExitStatus.OK, "guest halted with interrupts enabled and no interrupt source")
        return Stop(ExitStatus.OK, "guest halted")

    def _on_intr(self, ex: IntrExit) -> Verdict:
        ex.vcpu.clear_stop()
        if self.control.pending is not None:
            return self.control.pending
        self.control.park_if_asked(ex.vcpu)
        if self.spp is not None:
            self.spp.apply_pending()
        for hook in self.kick_hooks:
            verdict = hook(ex.vcpu)
            if verdict is not None:
                return verdict
        return None  # a kick with nothing to do (or a signal meant for someone else): re-enter

    def _unhandled_io(self, ex: IoExit) -> Verdict:
        if self.trace is not None:
            self.trace.note("unhandled-io", port=ex.port, size=ex.size, write=ex.is_write)
        if self.strict:
            return Stop(ExitStatus.UNHANDLED_EXIT, f"no device at port {ex.port:#x} (--strict)", fatal=True)
        if not ex.is_write:
            ex.value = 0xFFFFFFFF  # an empty ISA bus reads as all-ones
        return None

    def _unhandled_mmio(self, ex: MmioExit) -> Verdict:
        if self.trace is not None:
            self.trace.note("unhandled-mmio", address=ex.address, length=ex.length, write=ex.is_write)
        if self.strict:
            return Stop(ExitStatus.UNHANDLED_EXIT, f"no device at address {ex.address:#x} (--strict)", fatal=True)
        if not ex.is_write:
            ex.value = (1 << (8 * ex.length)) - 1
        return None

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
        """Turn on sub-page protection with the named backend (see vmm.spp.select)."""
        from vmm.spp.attach import attach_spp

        if self.spp is None:
            self.spp = attach_spp(self, backend, abi)
        return self.spp

    def stop_requested(self) -> bool:
        return self.control.pending is not None

    def kick(self) -> None:
        """Bring every vCPU out of KVM_RUN to its exit handlers soon (from any thread)."""
        self.control.kick()

    def stop(self, status: int, reason: str) -> None:
        """Ask every vCPU's loop to end; safe from signal handlers and other threads."""
        self.control.request_stop(Stop(status, reason))

    def run(self, timeout: float | None = None) -> RunResult:
        """Run every vCPU (the boot processor on this thread, each AP on its own) until one stops."""
        self.control.reset()
        start = time.perf_counter()
        exits_before = sum(v.exits for v in self.vcpus)
        with self._stop_signals(timeout), self._spp_running():
            aps = [
                threading.Thread(target=self._vcpu_main, args=(v,), name=f"pyvmm-vcpu{v.index}", daemon=True)
                for v in self.vcpus[1:]
            ]
            for t in aps:
                t.start()
            try:
                self._vcpu_main(self.vcpu)
            finally:
                self._join(aps)
        self.console.flush()
        outcome = self.control.outcome
        assert outcome is not None  # every loop records how it ended
        stop, report = outcome.stop, outcome.report
        reason = stop.reason if len(self.vcpus) == 1 else f"vCPU {outcome.vcpu.index}: {stop.reason}"
        if stop.fatal or stop.status == ExitStatus.TIMEOUT:
            report += guest_state(outcome.vcpu)
        exits = sum(v.exits for v in self.vcpus) - exits_before
        return RunResult(stop.status, reason, exits, time.perf_counter() - start, report)

    def _vcpu_main(self, vcpu: Vcpu) -> None:
        if vcpu is not self.vcpu:  # Ctrl-C and the timeout belong to the main thread
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGALRM})
        report = ""
        self.control.enter(vcpu)
        try:
            verdict = self._loop(vcpu)
        except PyvmmError as e:
            verdict = Stop(e.status, str(e), fatal=True)
            report = getattr(e, "details", "")
        except Exception:
            verdict = Stop(ExitStatus.HANDLER_ERROR, "an exit handler raised an exception", fatal=True)
            report = traceback.format_exc()
        except BaseException as e:  # Ctrl-C pressed twice, SystemExit: stop every vCPU, then let it go
            status = ExitStatus.INTERRUPTED if isinstance(e, KeyboardInterrupt) else ExitStatus.HANDLER_ERROR
            self.control.record(vcpu, Stop(status, f"{type(e).__name__} in the run loop"), "")
            raise
        finally:
            self.control.leave(vcpu)
        self.control.record(vcpu, verdict, report)

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for the AP threads, whatever interrupts the wait: they touch the kvm_run pages and
        guest RAM, which close() unmaps."""
        interrupted: BaseException | None = None
        while any(t.is_alive() for t in threads):
            try:
                for t in threads:
                    t.join()
            except BaseException as e:  # a Ctrl-C while waiting: they are stopping; keep waiting
                interrupted = e
                self.control.request_stop(Stop(ExitStatus.INTERRUPTED, "interrupted (Ctrl-C)"))
        if interrupted is not None:
            raise interrupted

    def _loop(self, vcpu: Vcpu) -> Stop:
        run = vcpu.run
        dispatch: Callable[[Exit], Verdict] = self.dispatcher.dispatch
        if self.stats is not None:
            dispatch = self.stats.wrap(dispatch)
        if self.trace is not None:
            dispatch = self.trace.wrap(dispatch)
        while True:
            exit_ = run()
            verdict = dispatch(exit_)
            if verdict is not None:
                return verdict

    @contextmanager
    def _spp_running(self) -> Iterator[None]:
        if self.spp is None:
            yield
            return
        self.spp.backend_started()
        try:
            yield
        finally:
            self.spp.backend_stopped()

    @contextmanager
    def _stop_signals(self, timeout: float | None) -> Iterator[None]:
        """SIGALRM for --timeout and SIGINT for Ctrl-C both end the run through `stop()`; the
        signal itself kicks the vCPU out of KVM_RUN (EINTR), immediate_exit covers the window
        before it enters."""
        self.control.can_signal = _install_kick_signal()
        if threading.current_thread() is not threading.main_thread():
            # Signal handlers belong to the main thread: time out with a timer instead. A vCPU
            # then leaves KVM_RUN for the stop only if the kick signal could be installed.
            timer = None
            if timeout is not None:
                timer = threading.Timer(timeout, self.stop, (ExitStatus.TIMEOUT, f"timed out after {timeout:g} s"))
                timer.daemon = True
                timer.start()
            try:
                yield
            finally:
                if timer is not None:
                    timer.cancel()
            return

        def on_alarm(signum: int, frame: Any) -> None:
            self.stop(ExitStatus.TIMEOUT, f"timed out after {timeout:g} s")

        def on_sigint(signum: int, frame: Any) -> None:
            self.stop(ExitStatus.INTERRUPTED, "interrupted (Ctrl-C)")
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C is immediate

        old_int = signal.signal(signal.SIGINT, on_sigint)
        old_alrm = signal.signal(signal.SIGALRM, on_alarm)
        if timeout is not None:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alrm)
            signal.signal(signal.SIGINT, old_int)

    def close(self) -> None:
        if hasattr(self, "console"):
            self.console.flush()
        if hasattr(self, "vm"):
            self.vm.close()
        if self._owns_kvm:
            self.kvm.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _interrupt_only(signum: int, frame: Any) -> None:
    """SIGUSR1 does nothing but make a thread's KVM_RUN return with EINTR (see RunControl.kick)."""


def _install_kick_signal() -> bool:
    """Install the kick signal's handler once, for good (a thread may still be kicked after a run
    ends); only the main thread can. Whether kicks can use the signal."""
    if signal.getsignal(signal.SIGUSR1) is _interrupt_only:
        return True
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, _interrupt_only)
        return True
    return False


# --- fatal exits -------------------------------------------------------------------------
def _on_shutdown(ex: ShutdownExit) -> Verdict:
    return Stop(ExitStatus.TRIPLE_FAULT, "guest triple-faulted (KVM_EXIT_SHUTDOWN)", fatal=True)


def _on_internal_error(ex: InternalErrorExit) -> Verdict:
    what = f"KVM internal error: {ex.suberror_name}"
    insn = ex.insn_bytes
    if insn is not None:
        what += f" (instruction bytes {insn.hex(' ')})"
    elif ex.data:
        what += " (data " + " ".join(hex(d) for d in ex.data) + ")"
    return Stop(ExitStatus.INTERNAL_ERROR, what, fatal=True)


# VMX reports a failed entry as exit reason 33/34 with bit 31 set; SVM as VMEXIT_INVALID (-1).
_ENTRY_HINTS = {
    0x80000021: "invalid guest state: check segment registers, CR0/CR4/EFER and the GDT/TSS set-up",
    0x80000022: "MSR loading failed during entry",
    0xFFFFFFFFFFFFFFFF: "the CPU (SVM) rejected the guest state (VMEXIT_INVALID)",
}


def _on_fail_entry(ex: FailEntryExit) -> Verdict:
    hw = ex.hardware_entry_failure_reason
    hint = _ENTRY_HINTS.get(hw, "see the CPU manual's VM-entry checks")
    return Stop(ExitStatus.FAIL_ENTRY, f"VM entry failed on CPU {ex.cpu}: hardware reason {hw:#x}: {hint}", fatal=True)


def _on_unhandled_exit(ex: Exit) -> Verdict:
    if isinstance(ex, (Unknown, ForeignExit)):
        what = f"exit reason {ex.raw_reason} ({ke.EXIT_REASON_NAMES.get(ex.raw_reason, 'unknown to pyvmm')})"
    else:
        what = f"exit {ex.name}"
    return Stop(ExitStatus.UNHANDLED_EXIT, f"no handler for {what}", fatal=True)


def open_trace(path: str) -> IO[str]:
    try:
        return open(path, "w", buffering=1 << 16)
    except OSError as e:
        raise ConfigError(f"cannot write trace file {path!r}: {e.strerror}") from None
