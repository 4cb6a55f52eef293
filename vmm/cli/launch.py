"""`pyvmm run`: build a machine from the options, load the image, run it, print what happened."""

from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager, suppress

from vmm import layout as L
from vmm.board.board import BoardSpec
from vmm.cli.qemu_options import machine_from_options, split_commas
from vmm.cpu.models import CpuRequest
from vmm.cpu.modes import CpuMode
from vmm.errors import ConfigError, ExitStatus, ObservationUnwritten
from vmm.inputs import InputFileError, check_output, open_output
from vmm.kvm.exits import ShutdownExit
from vmm.loaders.image import read_image
from vmm.machine import Machine, open_trace
from vmm.numbers import parse_count, parse_int
from vmm.record import TupleRecord
from vmm.runner.observe import ExitStats
from vmm.runner.runner import POWER_BUTTON_SIGNAL
from vmm.verdict import Stop

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    import signal
    from collections.abc import Iterator, Sequence
    from typing import Any, BinaryIO
else:  # signal.py's C half: the same calls, without the enums signal.py builds at import
    import _signal as signal


class RunOptions(TupleRecord):
    image: str
    mode: CpuMode | None = None  # None: long mode for a flat binary; kernels carry their own
    load: int | None = None
    entry: int | None = None
    mem: int = L.DEFAULT_MEM
    smp: int = 1
    append: str = ""
    modules: Sequence[tuple[str, str]] = ()  # (file, args)
    irqchip: bool | None = None  # None: on for kernels and SMP, off for flat binaries
    debug_exit: tuple[int, int] = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)
    testdev: bool = False
    pci_testdev: bool = False
    serial: str = "stdio"  # "stdio", "null", "none" (no COM1) or "file:PATH"
    no_reboot: bool = False  # -no-reboot: a triple fault ends the run with status 0, as QEMU's reset does
    pit: bool = True
    pit_reinject: bool = True
    rtc_localtime: bool = False
    cpu: CpuRequest = CpuRequest()  # immutable, so one default is shared
    handler_files: Sequence[str] = ()
    timeout: float | None = None
    stats: bool = False
    stats_json: str | None = None
    trace_path: str | None = None
    timeline_path: str | None = None
    strict: bool = False
    quiet: bool = False
    spp_regions: Sequence[str] = ()
    spp_files: Sequence[str] = ()
    policies: Sequence[str] = ()
    spp_backend: str = "auto"
    spp_abi: str | None = None
    snapshot_at: str | None = None
    snapshot_to: str | None = None
    snapshot_continue: bool = False
    msr_exits: Sequence[str] = ()  # --msr-exit INDEX[-LAST][:r|w|rw]
    gdb: str | None = None  # -gdb ADDRESS (-s: tcp::1234)
    gdb_wait: bool = False  # -S
    monitor: str | None = None  # -monitor stdio | unix:PATH,server[,nowait] | none

    @property
    def wants_spp(self) -> bool:
        return bool(self.spp_regions or self.spp_files or self.policies or self.spp_backend != "auto")


def start_run(image: str | None, values: dict[str, Any], *, qemu_command: bool) -> int:
    """`pyvmm run` with its option values (as the option table names them): a listing asked for
    with `help` (-device help, -machine help, -cpu help), or the run."""
    if any(d in ("help", "?") for d in values["qemu_devices"]):
        from vmm.cli.devices import device_help

        return print_listing(device_help())
    if any(m in ("help", "?") for m in values["machine"]):
        from vmm.cli.devices import machine_help

        return print_listing(machine_help())
    if values["cpu"] in ("help", "?"):
        from vmm.cli.devices import cpu_help

        return print_listing(cpu_help())
    if qemu_command and image is not None:
        raise ConfigError(f"a disk image ({image!r}) is not supported: give the kernel with -kernel FILE")
    return run_image(options_from_cli(image, values))


def print_listing(text: str) -> int:
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def run_image(o: RunOptions) -> int:
    from vmm.loaders import detect_format, load_kernel

    # SIGUSR2 presses the power button while the machine runs; before and after, it does nothing
    # (rather than end the process, its default)
    signal.signal(POWER_BUTTON_SIGNAL, signal.SIG_IGN)

    # the RAM size and vCPU count first: a wrong one must not set the limit an image is read to
    # (-m 0 read a 3 GiB sparse image whole before it was refused); then an image larger than
    # RAM is refused from its size
    BoardSpec(mem_size=o.mem, smp=o.smp).check()
    image = read_image(o.image, o.mem)
    # (read before KVM is opened: a bad path is reported even on a host without KVM)
    kind = detect_format(image)
    regions = spp_requests(o)
    irqchip = o.irqchip if o.irqchip is not None else (kind != "flat" or o.smp > 1)
    with run_outputs(o) as outputs:
        console = outputs.console
        # A kernel gets the PC platform (its firmware tables go into RAM first, so an image that
        # covers them wins); so does a flat binary that asks for PC devices or several CPUs.
        default_exit = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)
        pc = kind != "flat" or o.testdev or o.pci_testdev or o.debug_exit != default_exit or o.smp > 1
        with Machine(o.mem, strict=o.strict, smp=o.smp, irqchip=irqchip, console=console,
                     platform="pc" if pc else "minimal", debug_exit=o.debug_exit, testdev=o.testdev,
                     pci_testdev=o.pci_testdev,
                     com1=o.serial != "none", pit=o.pit, pit_reinject=o.pit_reinject,
                     rtc_localtime=o.rtc_localtime, cpu=o.cpu) as m:  # fmt: skip
            load_kernel(m, image, o.image, cmdline=o.append, modules=o.modules, mode=o.mode, load=o.load,
                        entry=o.entry)  # fmt: skip
            if o.wants_spp:
                from vmm.cli.policyfile import load_policy  # the SPP stack loads only when asked for

                spp = m.enable_spp(o.spp_backend, o.spp_abi)
                spp.protect_pages(regions)
                for arg in o.policies:
                    load_policy(arg, spp, m.snapshot_hooks)
            return run_loaded(m, o, outputs)


class RunOutputs:
    """The files a run writes besides the guest's console: descriptors opened (and so checked)
    before the machine is built. A plain class: it is made at every start-up (see
    tests/unit/test_startup_imports.py)."""

    __slots__ = ("console", "stats_json", "timeline", "trace")

    def __init__(self) -> None:
        self.trace: int | None = None
        self.timeline: int | None = None
        self.stats_json: int | None = None
        self.console: BinaryIO | None = None

    def descriptors(self) -> list[int]:
        return [fd for fd in (self.trace, self.timeline, self.stats_json) if fd is not None]


@contextmanager
def run_outputs(o: RunOptions) -> Iterator[RunOutputs]:
    """The trace's, timeline's and statistics' descriptors and COM1's stream for a run, closed
    when it ends."""
    outputs = RunOutputs()
    try:
        if o.trace_path:
            outputs.trace = open_trace(o.trace_path)
        if o.timeline_path:
            outputs.timeline = open_trace(o.timeline_path, "--timeline")
        if o.stats_json:
            outputs.stats_json = open_trace(o.stats_json, "--stats-json")
        outputs.console = open_console(o.serial)
    except BaseException:
        for fd in outputs.descriptors():
            os.close(fd)
        raise
    try:
        yield outputs
    finally:
        for fd in outputs.descriptors():
            os.close(fd)
        if outputs.console is not None and o.serial.startswith("file:"):
            # the console flushed everything at the end of the run and reported a failure then;
            # what a failed stream still holds would only fail again here
            with suppress(OSError):
                outputs.console.close()


def open_console(serial: str) -> BinaryIO | None:
    """The stream COM1 (and the debug console) write to; None is the process's stdout."""
    if serial in ("null", "none"):
        return io.BytesIO()
    if serial.startswith("file:"):
        path = serial.removeprefix("file:")
        try:
            fd = open_output(path)  # a FIFO or directory is refused by name, not blocked on
        except InputFileError as e:
            raise ConfigError(f"-serial file:{path}: {path!r} {e}") from None
        return os.fdopen(fd, "wb")
    return None


def triple_fault_without_reboot(ex: ShutdownExit) -> Stop:
    """QEMU with -no-reboot turns the reset a triple fault causes into the end of the run, status 0.
    The guest state is still reported: it says where the kernel died."""
    return Stop(ExitStatus.OK, "guest triple-faulted (KVM_EXIT_SHUTDOWN); -no-reboot ends the run", fatal=True)


def run_loaded(m: Machine, o: RunOptions, outputs: RunOutputs) -> int:
    """The part of a run after the machine is built: handlers, observers, the snapshot point,
    the run itself and what it prints."""
    err = sys.stderr
    check_snapshot_options(o)
    if o.no_reboot:
        m.on_exit(ShutdownExit, triple_fault_without_reboot)
    if o.monitor not in (None, "none"):
        m.enable_monitor(o.monitor)
    if o.gdb is not None:
        m.enable_gdb(o.gdb, wait=o.gdb_wait)
        if o.gdb_wait:
            err.write(f"pyvmm: waiting for gdb on {o.gdb}\n")
            err.flush()
    if o.msr_exits:
        from vmm.msr.events import parse_msr_exit

        for text in o.msr_exits:
            indices, reads, writes = parse_msr_exit(text)
            m.on_msr(indices, reads=reads, writes=writes)
    if o.handler_files:
        from vmm.cli.userfile import call_entry, load_user_file  # importlib's machinery: only for user files
        from vmm.snapshot.hooks import register_module_hooks
    for path in o.handler_files:
        module = load_user_file(path, "handlers")
        call_entry(module, path, "handlers", "setup", m)
        register_module_hooks(m.snapshot_hooks, f"handlers:{path}", module)
    if o.stats or outputs.stats_json is not None:
        m.stats = ExitStats(len(m.vcpus))
    if outputs.trace is not None:
        from vmm.runner.trace import ExitTrace  # json and the writer load only for a traced run

        m.trace = ExitTrace(outputs.trace)
    if outputs.timeline is not None:
        from vmm.runner.timeline import ExitTimeline

        m.timeline = ExitTimeline(outputs.timeline, len(m.vcpus))
    trigger = m.snapshot_at(o.snapshot_at) if o.snapshot_at else None
    result = m.run(timeout=o.timeout, handle_signals=True)
    if trigger is not None and trigger.fired():
        assert o.snapshot_to is not None
        m.snapshot().save(o.snapshot_to)
        err.write(f"pyvmm: snapshot at {trigger.at} written to {o.snapshot_to}\n")
        if o.snapshot_continue:
            result = m.run(timeout=o.timeout, handle_signals=True)
    if result.report:
        err.write(f"pyvmm: {result.reason}\n{result.report}\n")
    m.console.flush()  # the guest's last line, if it did not end one
    if m.console.failure is not None:
        err.write(f"pyvmm: the console output could not be written ({m.console.failure}); "
                  f"{m.console.dropped} bytes of guest output dropped\n")  # fmt: skip
        if o.serial == "stdio":
            quiet_stdout()
    if m.stats is not None and o.stats:
        err.write(m.stats.render() + "\n")
    if m.stats is not None and outputs.stats_json is not None:
        assert o.stats_json is not None
        write_stats_json(outputs.stats_json, o.stats_json, m.stats)
    if not o.quiet or (result.status != ExitStatus.OK and result.status % 2 == 0):
        err.write(
            f"pyvmm: {result.reason}; exit status {result.status} after {result.exits} exits "
            f"in {result.seconds:.3f} s\n"
        )
    return result.status


def quiet_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for a closed pipe would otherwise be a
    BrokenPipeError traceback when the interpreter flushes it on the way out."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def check_snapshot_options(o: RunOptions) -> None:
    if (o.snapshot_at is None) != (o.snapshot_to is None):
        raise ConfigError("--snapshot-at and --snapshot-to go together")
    if o.snapshot_continue and o.snapshot_at is None:
        raise ConfigError("--snapshot-and-continue needs --snapshot-at and --snapshot-to")
    if o.snapshot_at is not None:
        from vmm.snapshot.trigger import parse_snapshot_at

        parse_snapshot_at(o.snapshot_at)
    if o.snapshot_to is not None:
        try:
            check_output(o.snapshot_to)  # before the run, not after it
        except InputFileError as e:
            raise ConfigError(f"--snapshot-to {o.snapshot_to!r} {e}") from None


def restore_snapshot(o: RunOptions) -> int:
    """`pyvmm restore FILE`: the machine as the snapshot left it, run on with the options given."""
    check_snapshot_options(o)
    with run_outputs(o) as outputs:
        console = outputs.console
        smp = o.smp if o.smp > 0 else None
        mem = o.mem if o.mem > 0 else None
        with Machine.from_snapshot(o.image, mem_size=mem, smp=smp, console=console,
                                   strict=o.strict or None) as m:  # fmt: skip
            if o.policies:
                from vmm.cli.policyfile import load_policy

                spp = m.enable_spp()
                for arg in o.policies:
                    load_policy(arg, spp, m.snapshot_hooks)
            return run_loaded(m, o, outputs)


def write_stats_json(fd: int, path: str, stats: ExitStats) -> None:
    """The statistics as one JSON document; a file that cannot take them is one line, status 100."""
    import json

    data = (json.dumps(stats.as_json(), indent=1) + "\n").encode()
    try:
        done = os.write(fd, data)
    except OSError as e:
        raise ObservationUnwritten(f"--stats-json {path!r} could not be written: {e.strerror}") from None
    if done != len(data):
        raise ObservationUnwritten(f"--stats-json {path!r}: only {done} of {len(data)} bytes written (disk full?)")


def restore_options_from_cli(snapshot: str, kw: dict[str, Any]) -> RunOptions:
    mem, qemu_mem = kw.pop("mem"), kw.pop("qemu_mem")
    if mem is not None and qemu_mem is not None:
        raise ConfigError("give the memory size once (-m or --mem)")
    if qemu_mem is not None:
        mem = parse_qemu_size(qemu_mem)
    smp = kw.pop("smp")
    serial = kw.pop("serial")
    if serial not in ("stdio", "null", "none", "mon:stdio"):
        raise ConfigError(f"-serial {serial} is not supported (stdio, null or none)")
    strict = kw.pop("strict")
    return RunOptions(
        image=snapshot, mem=mem if mem is not None else 0, smp=parse_smp(smp) if smp is not None else 0,
        serial="stdio" if serial == "mon:stdio" else serial, handler_files=list(kw.pop("handler_files")),
        policies=list(kw.pop("policies")), strict=bool(strict), **kw,
    )  # fmt: skip



def spp_requests(o: RunOptions) -> dict[int, int]:
    """Every --spp and --spp-file request, checked for disagreement, as page -> mask."""
    if not (o.spp_regions or o.spp_files):
        return {}
    from vmm.spp.spec import combine, read_spec_file

    requests = [(f"--spp {r}", r) for r in o.spp_regions]
    for path in o.spp_files:
        requests += read_spec_file(path)
    return combine(requests, o.mem)


# --- from the command line ---------------------------------------------------------------------
IGNORED_QEMU = {"accel": ("kvm", None), "display": ("none", None)}


def options_from_cli(image: str | None, kw: dict[str, Any]) -> RunOptions:
    """RunOptions from click's values, with QEMU's spellings translated (or refused by name)."""
    kernel = kw.pop("kernel")
    if image is not None and kernel is not None:
        raise ConfigError(f"give the image once: {image!r} and -kernel {kernel!r}")
    image = image if image is not None else kernel
    if image is None:
        raise ConfigError("no image: pyvmm run IMAGE (or -kernel IMAGE)")
    for name, allowed in IGNORED_QEMU.items():
        value = kw.pop(name)
        if value not in allowed:
            raise ConfigError(f"-{name} {value} is not supported (pyvmm always runs on KVM with no display)")
    if kw.get("monitor") is not None:
        from vmm.debug.console import parse_monitor_address

        parse_monitor_address(kw["monitor"])  # a bad spelling is refused before anything is built
    for flag in ("enable_kvm", "nographic"):
        kw.pop(flag)  # pyvmm always uses KVM and has no display
    qemu = machine_from_options(kw)
    irqchip = kw.pop("irqchip")
    if qemu.irqchip is not None:
        if irqchip is not None and irqchip != qemu.irqchip:
            raise ConfigError("--irqchip/--no-irqchip and -machine kernel-irqchip disagree")
        irqchip = qemu.irqchip
    smp = parse_smp(kw.pop("smp"))
    if irqchip is False and smp > 1:
        # APs start through the in-kernel LAPIC: SMP without it would silently get it anyway
        raise ConfigError(f"-smp {smp} needs the in-kernel irqchip: kernel-irqchip=off (--no-irqchip) needs -smp 1")
    mem = kw.pop("mem")
    qemu_mem = kw.pop("qemu_mem")
    if mem is not None and qemu_mem is not None:
        raise ConfigError("give the memory size once (-m or --mem)")
    if qemu_mem is not None:
        mem = parse_qemu_size(qemu_mem)
    mode = kw.pop("mode")
    debug_exit = parse_debug_exit(kw.pop("debug_exit"))
    testdev = kw.pop("testdev")
    pci_testdev = False
    for dev in kw.pop("qemu_devices"):
        name, props = parse_device(dev)
        if name == "isa-debug-exit":
            debug_exit = (props.get("iobase", L.DEBUG_EXIT_PORT), props.get("iosize", L.DEBUG_EXIT_SIZE))
        elif name == "pc-testdev":
            testdev = True
        elif name == "pci-testdev":
            if props or pci_testdev:
                raise ConfigError("-device pci-testdev is given more than once, or with properties (it takes none)")
            pci_testdev = True
        else:
            raise ConfigError(
                f"-device {name} is not emulated by pyvmm (isa-debug-exit, pc-testdev and pci-testdev are)"
            )
    modules = [m for spec in kw.pop("initrd") for m in parse_initrd(spec)]
    modules += [parse_module(spec) for spec in kw.pop("modules")]
    return RunOptions(
        image=image, mode=CpuMode(mode) if mode else None, mem=mem if mem is not None else L.DEFAULT_MEM,
        smp=smp, modules=modules, debug_exit=debug_exit, testdev=testdev,
        pci_testdev=pci_testdev,
        serial=qemu.serial or "stdio", irqchip=irqchip, pit=qemu.pit, pit_reinject=qemu.pit_reinject,
        rtc_localtime=qemu.rtc_localtime, cpu=qemu.cpu,
        handler_files=list(kw.pop("handler_files")), spp_regions=list(kw.pop("spp_regions")),
        spp_files=list(kw.pop("spp_files")), policies=list(kw.pop("policies")),
        msr_exits=list(kw.pop("msr_exits")), gdb=gdb_address(kw), **kw,
    )  # fmt: skip


def gdb_address(kw: dict[str, Any]) -> str | None:
    gdb, default = kw.pop("gdb"), kw.pop("gdb_default")
    if gdb is not None and default:
        raise ConfigError("give the debugger address once (-s or -gdb)")
    if kw.get("gdb_wait") and gdb is None and not default:
        raise ConfigError("-S waits for a debugger: give -s or -gdb ADDRESS too")
    return "tcp::1234" if default else gdb


def parse_qemu_size(text: str) -> int:
    """QEMU's -m: a bare number is MiB; suffixes K/M/G/T as usual; 'size=N' too."""
    t = text.removeprefix("size=")
    try:
        if t.isdigit():
            return int(t) << 20
        return parse_int(t, "memory size")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def parse_smp(text: str) -> int:
    t = text.split(",")[0].removeprefix("cpus=")
    try:
        return parse_count(t, "vCPU count")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def parse_debug_exit(text: str | None) -> tuple[int, int]:
    if text is None:
        return (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)
    base_text, _, size_text = text.partition(":")
    try:
        base = parse_int(base_text, "debug-exit port")
        size = parse_int(size_text, "debug-exit size") if size_text else L.DEBUG_EXIT_SIZE
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if size not in (1, 2, 4) or base + size > 0x10000:
        raise ConfigError(f"debug-exit port {base:#x} size {size} is not a 1-, 2- or 4-byte port range")
    return (base, size)


def parse_device(text: str) -> tuple[str, dict[str, int]]:
    name, *props = text.split(",")
    values: dict[str, int] = {}
    for p in props:
        key, _, value = p.partition("=")
        try:
            values[key] = parse_int(value, f"-device {name} {key}")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if name == "isa-debug-exit" and set(values) - {"iobase", "iosize"}:
        raise ConfigError(
            f"-device isa-debug-exit takes iobase and iosize, not {sorted(set(values) - {'iobase', 'iosize'})}"
        )
    return name, values


def parse_initrd(spec: str) -> list[tuple[str, str]]:
    """QEMU's multiboot -initrd: modules separated by ',' (',,' is a literal comma), each
    'FILE ARGS'; the module's string is the whole entry."""
    entries = split_commas(spec)
    out = []
    for e in entries:
        if not e.strip():
            raise ConfigError(f"-initrd {spec!r} has an empty module entry")
        file, _, args = e.strip().partition(" ")
        out.append((file, args))
    return out


def parse_module(spec: str) -> tuple[str, str]:
    file, _, args = spec.partition(",")
    if not file:
        raise ConfigError(f"--module {spec!r} names no file")
    return (file, args)
