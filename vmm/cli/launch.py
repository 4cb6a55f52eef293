"""`pyvmm run`: build a machine from the options, load the image, run it, print what happened."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from vmm import layout as L
from vmm.cli.userfile import call_entry, load_user_file
from vmm.cpu.modes import CpuMode
from vmm.errors import ConfigError, ExitStatus, OutputError
from vmm.loaders.image import MODULE_LIMIT, read_image
from vmm.machine import Machine, open_trace
from vmm.numbers import parse_count, parse_int
from vmm.runner.observe import ExitStats, ExitTrace


@dataclass
class RunOptions:
    image: str
    mode: CpuMode | None = None  # None: long mode for a flat binary; kernels carry their own
    load: int | None = None
    entry: int | None = None
    mem: int = L.DEFAULT_MEM
    smp: int = 1
    append: str = ""
    modules: list[tuple[str, str]] = field(default_factory=list)  # (file, args)
    irqchip: bool | None = None  # None: on for kernels and SMP, off for flat binaries
    debug_exit: tuple[int, int] = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)
    testdev: bool = False
    serial: str = "stdio"
    handler_files: list[str] = field(default_factory=list)
    timeout: float | None = None
    stats: bool = False
    trace_path: str | None = None
    strict: bool = False
    quiet: bool = False
    spp_regions: list[str] = field(default_factory=list)
    spp_files: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    spp_backend: str = "auto"
    spp_abi: str | None = None

    @property
    def wants_spp(self) -> bool:
        return bool(self.spp_regions or self.spp_files or self.policies or self.spp_backend != "auto")


def run_image(o: RunOptions) -> int:
    from vmm.loaders import detect_format, load_kernel

    # an image larger than RAM is refused from its size; a RAM size that is itself wrong is
    # reported by the machine, so it does not set the limit
    image = read_image(o.image, o.mem if o.mem >= L.PAGE_SIZE else MODULE_LIMIT)
    # (read before KVM is opened: a bad path is reported even on a host without KVM)
    kind = detect_format(image)
    regions = spp_requests(o)
    irqchip = o.irqchip if o.irqchip is not None else (kind != "flat" or o.smp > 1)
    trace_file = open_trace(o.trace_path) if o.trace_path else None
    err = sys.stderr
    console: BinaryIO | None = io.BytesIO() if o.serial in ("null", "none") else None
    try:
        # A kernel gets the PC platform (its firmware tables go into RAM first, so an image that
        # covers them wins); so does a flat binary that asks for PC devices or several CPUs.
        default_exit = (L.DEBUG_EXIT_PORT, L.DEBUG_EXIT_SIZE)
        pc = kind != "flat" or o.testdev or o.debug_exit != default_exit or o.smp > 1
        with Machine(o.mem, strict=o.strict, smp=o.smp, irqchip=irqchip, console=console,
                     platform="pc" if pc else "minimal", debug_exit=o.debug_exit, testdev=o.testdev) as m:  # fmt: skip
            load_kernel(m, image, o.image, cmdline=o.append, modules=o.modules, mode=o.mode, load=o.load,
                        entry=o.entry)  # fmt: skip
            if o.wants_spp:
                from vmm.cli.policyfile import load_policy  # the SPP stack loads only when asked for

                spp = m.enable_spp(o.spp_backend, o.spp_abi)
                spp.protect_pages(regions)
                for arg in o.policies:
                    load_policy(arg, spp)
            for path in o.handler_files:
                call_entry(load_user_file(path, "handlers"), path, "handlers", "setup", m)
            if o.stats:
                m.stats = ExitStats()
            if trace_file is not None:
                m.trace = ExitTrace(trace_file)
            result = m.run(timeout=o.timeout, handle_signals=True)
            if trace_file is not None:
                close_trace(trace_file, o.trace_path or "")  # before the summary: a failure is the one line
            if result.report:
                err.write(f"pyvmm: {result.reason}\n{result.report}\n")
            if m.stats is not None:
                err.write(m.stats.render() + "\n")
            if not o.quiet or (result.status != ExitStatus.OK and result.status % 2 == 0):
                err.write(
                    f"pyvmm: {result.reason}; exit status {result.status} after {result.exits} exits "
                    f"in {result.seconds:.3f} s\n"
                )
            return result.status
    finally:
        if trace_file is not None and not trace_file.closed:
            with contextlib.suppress(OSError):  # an error is already on its way out: it is the one reported
                trace_file.close()


def close_trace(trace_file: IO[str], path: str) -> None:
    """Flush and close the trace; data that cannot be written (a full disk) is an OutputError."""
    try:
        trace_file.close()
    except OSError as e:
        raise OutputError(f"trace file {path!r} could not be written: {e.strerror}") from None


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
IGNORED_QEMU = {"accel": ("kvm", None), "display": ("none", None), "monitor": ("none", None)}


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
    for flag in ("no_reboot", "enable_kvm", "nographic"):
        kw.pop(flag)  # pyvmm never reboots, always uses KVM and has no display
    mem = kw.pop("mem")
    qemu_mem = kw.pop("qemu_mem")
    if mem is not None and qemu_mem is not None:
        raise ConfigError("give the memory size once (-m or --mem)")
    if qemu_mem is not None:
        mem = parse_qemu_size(qemu_mem)
    mode = kw.pop("mode")
    debug_exit = parse_debug_exit(kw.pop("debug_exit"))
    testdev = kw.pop("testdev")
    for dev in kw.pop("qemu_devices"):
        name, props = parse_device(dev)
        if name == "isa-debug-exit":
            debug_exit = (props.get("iobase", L.DEBUG_EXIT_PORT), props.get("iosize", L.DEBUG_EXIT_SIZE))
        elif name == "pc-testdev":
            testdev = True
        else:
            raise ConfigError(f"-device {name} is not emulated by pyvmm (isa-debug-exit and pc-testdev are)")
    serial = kw.pop("serial")
    if serial not in ("stdio", "null", "none", "mon:stdio"):
        raise ConfigError(f"-serial {serial} is not supported (stdio, null or none)")
    modules = [m for spec in kw.pop("initrd") for m in parse_initrd(spec)]
    modules += [parse_module(spec) for spec in kw.pop("modules")]
    return RunOptions(
        image=image, mode=CpuMode(mode) if mode else None, mem=mem if mem is not None else L.DEFAULT_MEM,
        smp=parse_smp(kw.pop("smp")), modules=modules, debug_exit=debug_exit, testdev=testdev,
        serial="stdio" if serial == "mon:stdio" else serial,
        handler_files=list(kw.pop("handler_files")), spp_regions=list(kw.pop("spp_regions")),
        spp_files=list(kw.pop("spp_files")), policies=list(kw.pop("policies")), **kw,
    )  # fmt: skip


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
    entries: list[str] = []
    current = ""
    i = 0
    while i < len(spec):
        if spec[i] == ",":
            if spec[i + 1 : i + 2] == ",":
                current += ","
                i += 2
                continue
            entries.append(current)
            current = ""
        else:
            current += spec[i]
        i += 1
    entries.append(current)
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
