"""The `pyvmm` command: `pyvmm run IMAGE`, `pyvmm restore SNAPSHOT` and `pyvmm info`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from vmm.cli.qemu_options import QEMU_MACHINE_OPTIONS, QemuSpelledCommand
from vmm.cpu.modes import CpuMode
from vmm.errors import ConfigError, ExitStatus, PyvmmError, status_of
from vmm.numbers import parse_int, parse_seconds


class Number(click.ParamType):
    name = "number"

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_int(str(value), self.what)
        except ValueError as e:
            self.fail(str(e), param, ctx)


class Seconds(click.ParamType):
    """A --timeout: finite, above 0, at most vmm.numbers.MAX_SECONDS."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_seconds(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """pyvmm: run guests on /dev/kvm with every VM exit handled in Python."""


def _opt(*decls: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(*decls, **kw)


SNAPSHOT_OPTIONS = [
    _opt("--snapshot-at", "snapshot_at", type=str, default=None, metavar="sync:N|exits:N|spp:N",
                 help="Stop at the Nth ucall SYNC, exit or SPP event and write a snapshot (with --snapshot-to)."),
    _opt("--snapshot-to", "snapshot_to", type=click.Path(), default=None, metavar="FILE",
                 help="Where --snapshot-at writes the snapshot; the run then ends with status 0."),
    _opt("--snapshot-and-continue", "snapshot_continue", is_flag=True,
                 help="After writing the snapshot, run on to the end."),
]  # fmt: skip



RUN_OPTIONS = [*SNAPSHOT_OPTIONS,
    _opt("--mode", type=click.Choice([m.value for m in CpuMode]), default=None,
         help="CPU mode a flat binary starts in [long]; ELF and multiboot images carry their own."),
    _opt("--load", type=Number("load address"), default=None,
         help="Guest-physical load address of a flat binary [real: 0x7c00, else 0x100000]."),
    _opt("--entry", type=Number("entry point"), default=None, help="Entry point of a flat binary [the load address]."),
    _opt("--mem", type=Number("memory size"), default=None, help="Guest RAM in bytes; K/M/G suffixes [128M, as QEMU]."),
    _opt("-m", "--m", "qemu_mem", type=str, default=None, metavar="SIZE",
         help="QEMU spelling of --mem: a number without a suffix is MiB, as in QEMU."),
    _opt("-smp", "--smp", "smp", type=str, default="1", metavar="N", help="Number of vCPUs (QEMU's 'cpus=N' too)."),
    _opt("-append", "--append", "append", type=str, default="", help="Kernel command line (multiboot)."),
    _opt("-initrd", "--initrd", "initrd", multiple=True, metavar="'FILE ARGS,FILE2 ...'",
         help="Multiboot modules, QEMU syntax: comma-separated 'file args' (',,' is a comma); repeatable."),
    _opt("--module", "modules", multiple=True, metavar="FILE[,ARGS]", help="One multiboot module (repeatable)."),
    _opt("-kernel", "--kernel", "kernel", type=str, default=None, metavar="IMAGE",
         help="QEMU spelling of the IMAGE argument."),
    _opt("--irqchip/--no-irqchip", default=None,
         help="In-kernel PIC/IOAPIC/LAPIC and PIT [on for ELF, multiboot and SMP; off for flat binaries]."),
    _opt("--debug-exit", "debug_exit", type=str, default=None, metavar="BASE[:SIZE]",
         help="Where the isa-debug-exit port is [0xf4:4]."),
    _opt("--testdev", is_flag=True, help="Add QEMU's pc-testdev."),
    _opt("-device", "--device", "qemu_devices", multiple=True, metavar="DEV[,PROPS]",
         help="QEMU spelling: isa-debug-exit,iobase=N,iosize=N or pc-testdev."),
    _opt("-serial", "--serial", "serial", multiple=True, metavar="stdio|file:PATH|null|none|chardev:ID",
         help="QEMU: where COM1 writes [stdio]; none: no COM1."),
    _opt("-no-reboot", "--no-reboot", "no_reboot", is_flag=True,
         help="QEMU: a reset or triple fault ends the run with status 0."),
    _opt("-accel", "--accel", "accel", type=str, default=None, hidden=True),
    _opt("-enable-kvm", "--enable-kvm", "enable_kvm", is_flag=True, hidden=True),
    _opt("-nographic", "--nographic", "nographic", is_flag=True, hidden=True),
    _opt("-display", "--display", "display", type=str, default=None, hidden=True),
    _opt("-monitor", "--monitor", "monitor", type=str, default=None, metavar="stdio|unix:PATH,server,nowait|none",
         help="A small monitor (info registers, x/xp, info spp, stop, cont, quit), as QEMU's."),
    *QEMU_MACHINE_OPTIONS,
    _opt("--handlers", "handler_files", multiple=True, type=click.Path(),
         help="Python file whose setup(machine) registers exit handlers (repeatable)."),
    _opt("-gdb", "--gdb", "gdb", type=str, default=None, metavar="tcp::PORT|unix:PATH",
         help="Wait for a gdb connection there (QEMU's spelling); the guest stops when gdb connects."),
    _opt("-s", "gdb_default", is_flag=True, help="QEMU's shorthand for -gdb tcp::1234."),
    _opt("-S", "gdb_wait", is_flag=True, help="Stop before the first instruction until the debugger continues."),
    _opt("--msr-exit", "msr_exits", multiple=True, metavar="INDEX[-LAST][:r|w|rw]",
         help="Send the guest's RDMSR/WRMSR of this MSR to Python (traced, counted, and seen by --handlers "
              "that call on_msr); every other MSR stays in the kernel (repeatable) [rw]."),
    _opt("--timeout", type=Seconds(), default=None,
         help="Stop the guest after this many seconds."),
    _opt("--stats", is_flag=True, help="Print exits per reason and per vCPU, and SPP events per verdict, at the end."),
    _opt("--stats-json", "stats_json", type=click.Path(), default=None, metavar="FILE",
         help="Write the --stats figures to FILE as JSON at the end."),
    _opt("--trace", "trace_path", type=click.Path(), default=None,
         help="Write one JSON line per exit (and per unhandled port or MMIO access)."),
    _opt("--timeline", "timeline_path", type=click.Path(), default=None, metavar="FILE",
         help="Write the run as a Trace Event Format timeline (Perfetto UI, chrome://tracing)."),
    _opt("--strict", is_flag=True, help="Unhandled ports/MMIO and bad guest requests stop the run."),
    _opt("-q", "--quiet", is_flag=True, help="No summary line on stderr."),
    _opt("--spp", "spp_regions", multiple=True, metavar="GPA[:MASK]|START-END",
         help="Write-protect a page with a 32-bit sub-page mask (default 0), or a byte range (repeatable)."),
    _opt("--spp-file", "spp_files", multiple=True, type=click.Path(), help="File of --spp regions."),
    _opt("--policy", "policies", multiple=True, metavar="FILE|NAME",
         help="SPP policy: a Python file or a built-in (log-and-deny, allow-rip-range, count-and-stop)."),
    _opt("--spp-backend", type=click.Choice(["auto", "software", "kernel"]), default="auto", show_default=True,
         help="Who enforces SPP: the software engine, or a patched kernel (explicit only)."),
    _opt("--spp-abi", type=click.Choice(["rfc-v1", "v12"]), default=None,
         help="The patched kernel's SPP ABI (with --spp-backend kernel)."),
]  # fmt: skip


def with_options(options: list[Callable[[Callable[..., Any]], Callable[..., Any]]]) -> Callable[..., Any]:
    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


@cli.command(cls=QemuSpelledCommand, context_settings={"ignore_unknown_options": False})
@click.argument("image", required=False, type=click.Path(dir_okay=True, readable=False))
@with_options(RUN_OPTIONS)
@click.pass_obj
def run(obj: dict[str, Any] | None, /, image: str | None, **kw: Any) -> int:
    """Run IMAGE: a flat binary, an ELF kernel or a multiboot kernel (detected from the file)."""
    from vmm.cli.launch import options_from_cli, run_image

    if any(d in ("help", "?") for d in kw["qemu_devices"]):
        from vmm.cli.devices import device_help

        click.echo(device_help(), nl=False)
        return 0
    if any(m in ("help", "?") for m in kw["machine"]):
        from vmm.cli.devices import machine_help

        click.echo(machine_help(), nl=False)
        return 0
    if kw["cpu"] in ("help", "?"):
        from vmm.cli.devices import cpu_help

        click.echo(cpu_help(), nl=False)
        return 0
    if obj and obj.get("qemu_command") and image is not None:
        raise ConfigError(f"a disk image ({image!r}) is not supported: give the kernel with -kernel FILE")
    return run_image(options_from_cli(image, kw))


RESTORE_OPTIONS = [*SNAPSHOT_OPTIONS,
    _opt("--mem", type=Number("memory size"), default=None, help="Guest RAM; must match the snapshot's."),
    _opt("-m", "qemu_mem", type=str, default=None, metavar="SIZE", help="QEMU spelling of --mem."),
    _opt("-smp", "--smp", "smp", type=str, default=None, metavar="N", help="vCPUs; must match the snapshot's."),
    _opt("-serial", "serial", type=str, default="stdio", help="stdio (the default), null or none."),
    _opt("--handlers", "handler_files", multiple=True, type=click.Path(),
         help="Python file whose setup(machine) registers exit handlers (repeatable)."),
    _opt("--policy", "policies", multiple=True, metavar="FILE|NAME", help="SPP policy, as for run."),
    _opt("--timeout", type=Seconds(), default=None,
         help="Stop the guest after this many seconds."),
    _opt("--stats", is_flag=True, help="Print exits per reason and per vCPU, and SPP events per verdict, at the end."),
    _opt("--stats-json", "stats_json", type=click.Path(), default=None, metavar="FILE",
         help="Write the --stats figures to FILE as JSON at the end."),
    _opt("--trace", "trace_path", type=click.Path(), default=None, help="Write one JSON line per exit."),
    _opt("--timeline", "timeline_path", type=click.Path(), default=None, metavar="FILE",
         help="Write the run as a Trace Event Format timeline (Perfetto UI, chrome://tracing)."),
    _opt("--strict", is_flag=True, default=None, help="Unhandled ports/MMIO and bad guest requests stop the run."),
    _opt("-q", "--quiet", is_flag=True, help="No summary line on stderr."),
]  # fmt: skip


@cli.command()
@click.argument("snapshot", type=click.Path(dir_okay=False, readable=False))
@with_options(RESTORE_OPTIONS)
def restore(snapshot: str, **kw: Any) -> int:
    """Resume the machine saved in SNAPSHOT (written by run --snapshot-at ... --snapshot-to)."""
    from vmm.cli.launch import restore_options_from_cli, restore_snapshot

    return restore_snapshot(restore_options_from_cli(snapshot, kw))


@cli.command()
def info() -> int:
    """Report the KVM API version, the capabilities pyvmm uses and the SPP backend it would pick."""
    from vmm.cli.info import host_report

    click.echo(host_report())
    return 0


def one_line(message: str) -> str:
    """An error is one line even when it quotes a value with a newline (or another control
    character) in it: those are shown escaped, as repr() would show them."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def main(argv: list[str] | None = None, *, qemu_command: bool = False) -> int:
    """Entry point: every failure becomes one line on stderr and a documented exit status.
    `qemu_command`: called as pyvmm-system-x86_64, which takes no positional disk image."""
    try:
        rv = cli.main(args=argv, prog_name="pyvmm", standalone_mode=False, obj={"qemu_command": qemu_command})
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:
        click.echo(f"pyvmm: {one_line(e.format_message())}", err=True)
        return ExitStatus.USAGE
    except click.Abort:
        return ExitStatus.INTERRUPTED
    except PyvmmError as e:
        details = getattr(e, "details", "")
        if details:
            click.echo(details.rstrip(), err=True)
        click.echo(f"pyvmm: {one_line(str(e))}", err=True)
        return int(status_of(e))
    except KeyboardInterrupt:
        click.echo("pyvmm: interrupted", err=True)
        return ExitStatus.INTERRUPTED
    return int(rv or 0)


if __name__ == "__main__":
    sys.exit(main())
