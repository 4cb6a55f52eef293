"""The `pyvmm` command: `pyvmm run IMAGE` and `pyvmm info`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus, PyvmmError, status_of
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


RUN_OPTIONS = [
    _opt("--mode", type=click.Choice([m.value for m in CpuMode]), default=None,
         help="CPU mode a flat binary starts in [long]; ELF and multiboot images carry their own."),
    _opt("--load", type=Number("load address"), default=None,
         help="Guest-physical load address of a flat binary [real: 0x7c00, else 0x100000]."),
    _opt("--entry", type=Number("entry point"), default=None, help="Entry point of a flat binary [the load address]."),
    _opt("--mem", type=Number("memory size"), default=None, help="Guest RAM in bytes; K/M/G suffixes [16M]."),
    _opt("-m", "qemu_mem", type=str, default=None, metavar="SIZE",
         help="QEMU spelling of --mem: a number without a suffix is MiB, as in QEMU."),
    _opt("-smp", "--smp", "smp", type=str, default="1", metavar="N", help="Number of vCPUs (QEMU's 'cpus=N' too)."),
    _opt("-append", "--append", "append", type=str, default="", help="Kernel command line (multiboot)."),
    _opt("-initrd", "--initrd", "initrd", multiple=True, metavar="'FILE ARGS,FILE2 ...'",
         help="Multiboot modules, QEMU syntax: comma-separated 'file args' (',,' is a comma); repeatable."),
    _opt("--module", "modules", multiple=True, metavar="FILE[,ARGS]", help="One multiboot module (repeatable)."),
    _opt("-kernel", "kernel", type=str, default=None, metavar="IMAGE", help="QEMU spelling of the IMAGE argument."),
    _opt("--irqchip/--no-irqchip", default=None,
         help="In-kernel PIC/IOAPIC/LAPIC and PIT [on for ELF, multiboot and SMP; off for flat binaries]."),
    _opt("--debug-exit", "debug_exit", type=str, default=None, metavar="BASE[:SIZE]",
         help="Where the isa-debug-exit port is [0xf4:4]."),
    _opt("--testdev", is_flag=True, help="Add QEMU's pc-testdev."),
    _opt("-device", "qemu_devices", multiple=True, metavar="DEV[,PROPS]",
         help="QEMU spelling: isa-debug-exit,iobase=N,iosize=N or pc-testdev."),
    _opt("-serial", "serial", type=str, default="stdio", help="QEMU spelling: stdio (the default), null or none."),
    _opt("-no-reboot", "no_reboot", is_flag=True, help="Accepted for QEMU command lines: pyvmm never reboots."),
    _opt("-accel", "accel", type=str, default=None, hidden=True),
    _opt("-enable-kvm", "enable_kvm", is_flag=True, hidden=True),
    _opt("-nographic", "nographic", is_flag=True, hidden=True),
    _opt("-display", "display", type=str, default=None, hidden=True),
    _opt("-monitor", "monitor", type=str, default=None, hidden=True),
    _opt("--handlers", "handler_files", multiple=True, type=click.Path(),
         help="Python file whose setup(machine) registers exit handlers (repeatable)."),
    _opt("--timeout", type=Seconds(), default=None,
         help="Stop the guest after this many seconds."),
    _opt("--stats", is_flag=True, help="Print a per-exit-reason table at the end."),
    _opt("--trace", "trace_path", type=click.Path(), default=None,
         help="Write one JSON line per exit (and per unhandled port or MMIO access)."),
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


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("image", required=False, type=click.Path(dir_okay=True, readable=False))
@with_options(RUN_OPTIONS)
def run(image: str | None, **kw: Any) -> int:
    """Run IMAGE: a flat binary, an ELF kernel or a multiboot kernel (detected from the file)."""
    from vmm.cli.launch import options_from_cli, run_image

    return run_image(options_from_cli(image, kw))


@cli.command()
def info() -> int:
    """Report the KVM API version, the capabilities pyvmm uses and the SPP backend it would pick."""
    from vmm.cli.info import host_report

    click.echo(host_report())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: every failure becomes one line on stderr and a documented exit status."""
    try:
        rv = cli.main(args=argv, prog_name="pyvmm", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:
        click.echo(f"pyvmm: {e.format_message()}", err=True)
        return ExitStatus.USAGE
    except click.Abort:
        return ExitStatus.INTERRUPTED
    except PyvmmError as e:
        details = getattr(e, "details", "")
        if details:
            click.echo(details.rstrip(), err=True)
        click.echo(f"pyvmm: {e}", err=True)
        return int(status_of(e))
    except KeyboardInterrupt:
        click.echo("pyvmm: interrupted", err=True)
        return ExitStatus.INTERRUPTED
    return int(rv or 0)


if __name__ == "__main__":
    sys.exit(main())
