"""The `pyvmm` command through click: `pyvmm run IMAGE`, `pyvmm restore SNAPSHOT` and `pyvmm info`,
their help, and every refusal of a command line. (A plain run's line is read without click, by
vmm.cli.run_args, from the same option table.)"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from vmm.cli.option_table import (
    CHOICE,
    FLAG,
    MULTIPLE,
    NUMBER,
    PATH,
    RESTORE_OPTIONS,
    RUN_OPTIONS,
    SECONDS,
    SWITCH,
    Opt,
)
from vmm.cli.outcome import one_line, reported
from vmm.errors import ExitStatus
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


def param_type(opt: Opt) -> click.ParamType | None:
    if opt.value == NUMBER:
        return Number(opt.what)
    if opt.value == SECONDS:
        return Seconds()
    if opt.value == CHOICE:
        return click.Choice(list(opt.choices))
    if opt.value == PATH:
        return click.Path()
    return None  # text: click's STRING


def click_option(opt: Opt) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option an entry of vmm.cli.option_table declares."""
    kw: dict[str, Any] = {"metavar": opt.metavar, "help": opt.help, "hidden": opt.hidden}
    if opt.kind == FLAG:
        kw["is_flag"] = True
    elif opt.kind == MULTIPLE:
        kw["multiple"] = True
    else:
        kw["default"] = opt.default
        kw["show_default"] = opt.show_default
    if opt.kind != SWITCH:
        kw["type"] = param_type(opt)
    return click.option(*opt.decls, opt.dest, **kw)


def with_options(options: list[Opt]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = click_option(option)(fn)
        return fn

    return apply


class QemuSpelledCommand(click.Command):
    """A command whose multi-letter options may have one dash. click would read an unknown
    `-bogus` as the short options -b -o -g ... and name '-b' in its refusal; this names the word
    the user typed."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value: dict[str, bool] = {}
        long_name: dict[str, str] = {}  # "-q" -> "--quiet"
        for p in self.get_params(ctx):
            if isinstance(p, click.Option):
                for name in (*p.opts, *p.secondary_opts):
                    takes_value[name] = not p.is_flag and p.nargs != 0
                spelled_long = [n for n in p.opts if n.startswith("--")]
                for name in p.opts:
                    if len(name) == 2 and spelled_long:
                        long_name[name] = spelled_long[0]
        args = list(args)
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                break
            if arg in takes_value:
                # click tries every option as a long one first and, for a short one, builds (and
                # catches) a NoSuchOption, importing difflib to suggest names: a few ms of every
                # start. Handing it the long spelling of the same option skips that detour.
                args[i] = long_name.get(arg, arg)
                i += 2 if takes_value[arg] else 1
                continue
            if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and not arg[1].isdigit():
                raise click.NoSuchOption(arg, ctx=ctx)
            i += 1
        return super().parse_args(ctx, args)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """pyvmm: run guests on /dev/kvm with every VM exit handled in Python."""


@cli.command(cls=QemuSpelledCommand, context_settings={"ignore_unknown_options": False})
@click.argument("image", required=False, type=click.Path(dir_okay=True, readable=False))
@with_options(RUN_OPTIONS)
@click.pass_obj
def run(obj: dict[str, Any] | None, /, image: str | None, **kw: Any) -> int:
    """Run IMAGE: a flat binary, an ELF kernel or a multiboot kernel (detected from the file)."""
    from vmm.cli.launch import start_run

    return start_run(image, kw, qemu_command=bool(obj and obj.get("qemu_command")))


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


def main(argv: list[str] | None = None, *, qemu_command: bool = False) -> int:
    """Entry point: every failure becomes one line on stderr and a documented exit status.
    `qemu_command`: called as pyvmm-system-x86_64, which takes no positional disk image."""

    def parse_and_run() -> int:
        obj = {"qemu_command": qemu_command}
        return int(cli.main(args=argv, prog_name="pyvmm", standalone_mode=False, obj=obj) or 0)

    try:
        return reported(parse_and_run)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:
        click.echo(f"pyvmm: {one_line(e.format_message())}", err=True)
        return ExitStatus.USAGE
    except click.Abort:
        return ExitStatus.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
