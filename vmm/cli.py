"""The `pyvmm` command: `pyvmm run IMAGE` and `pyvmm info`."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import layout as L
from .errors import ExitStatus, PyvmmError
from .modes import CpuMode
from .numbers import parse_int


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """pyvmm: run guests on /dev/kvm with every VM exit handled in Python."""


@cli.command()
@click.argument("image", type=click.Path(dir_okay=True, readable=False))  # read_image reports it: BAD_IMAGE
@click.option(
    "--mode",
    type=click.Choice([m.value for m in CpuMode]),
    default="long",
    show_default=True,
    help="CPU mode a flat binary starts in.",
)
@click.option(
    "--load",
    type=Number("load address"),
    default=None,
    help="Guest-physical load address [real: 0x7c00, else 0x100000].",
)
@click.option("--entry", type=Number("entry point"), default=None, help="Entry point [the load address].")
@click.option(
    "-m",
    "--mem",
    type=Number("memory size"),
    default=L.DEFAULT_MEM,
    show_default=True,
    help="Guest RAM in bytes; K/M/G suffixes accepted.",
)
@click.option(
    "--handlers",
    "handler_files",
    multiple=True,
    type=click.Path(),
    help="Python file whose setup(machine) registers exit handlers (repeatable).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop the guest after this many seconds.",
)
@click.option("--stats", is_flag=True, help="Print a per-exit-reason table at the end.")
@click.option("--trace", "trace_path", type=click.Path(), default=None, help="Write one JSON line per exit.")
@click.option("--strict", is_flag=True, help="Unhandled ports/MMIO and bad guest requests stop the run.")
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
@click.option(
    "--spp",
    "spp_regions",
    multiple=True,
    metavar="GPA[:MASK]|START-END",
    help="Write-protect a page with a 32-bit sub-page mask (default 0), or a byte range (repeatable).",
)
@click.option("--spp-file", "spp_files", multiple=True, type=click.Path(), help="File of --spp regions.")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="FILE|NAME",
    help="SPP policy: a Python file or a built-in (log-and-deny, allow-rip-range, count-and-stop).",
)
@click.option(
    "--spp-backend",
    type=click.Choice(["auto", "software", "kernel"]),
    default="auto",
    show_default=True,
    help="Who enforces SPP: the software engine, or a patched kernel (explicit only).",
)
@click.option(
    "--spp-abi",
    type=click.Choice(["rfc-v1", "v12"]),
    default=None,
    help="The patched kernel's SPP ABI (with --spp-backend kernel).",
)
def run(
    image: str,
    mode: str,
    load: int | None,
    entry: int | None,
    mem: int,
    handler_files: tuple[str, ...],
    timeout: float | None,
    stats: bool,
    trace_path: str | None,
    strict: bool,
    quiet: bool,
    spp_regions: tuple[str, ...],
    spp_files: tuple[str, ...],
    policies: tuple[str, ...],
    spp_backend: str,
    spp_abi: str | None,
) -> int:
    """Run the flat binary IMAGE."""
    from .runner import RunOptions, run_image

    opts = RunOptions(
        image=image,
        mode=CpuMode(mode),
        load=load,
        entry=entry,
        mem=mem,
        handler_files=list(handler_files),
        timeout=timeout,
        stats=stats,
        trace_path=trace_path,
        strict=strict,
        quiet=quiet,
        spp_regions=list(spp_regions),
        spp_files=list(spp_files),
        policies=list(policies),
        spp_backend=spp_backend,
        spp_abi=spp_abi,
    )
    return run_image(opts)


@cli.command()
def info() -> int:
    """Report the KVM API version, the capabilities pyvmm uses and the SPP backend it would pick."""
    from .info import host_report

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
        return int(e.status)
    except KeyboardInterrupt:
        click.echo("pyvmm: interrupted", err=True)
        return ExitStatus.INTERRUPTED
    return int(rv or 0)


if __name__ == "__main__":
    sys.exit(main())
