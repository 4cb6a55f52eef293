"""`pyvmm run`'s command line read straight from the option table, without click.

Importing click costs a run about 130 M instructions, three times the interpreter's own start-up
(bench group 11), and a plain run uses none of what it offers: help, suggestions, error messages.
So a command line this reader understands completely is read here, into exactly the values click
would pass `run`; anything else (help, an unknown or misspelt option, a missing or bad value,
`--opt=value`, bundled short flags, `--`) is left to click, which reports it as it always has.
The reader never reports an error itself: when in doubt it declines, and click decides.
"""

from __future__ import annotations

import os

from vmm.cli.option_table import CHOICE, FLAG, MULTIPLE, NUMBER, PATH, RUN_OPTIONS, SECONDS, SWITCH, Opt
from vmm.numbers import parse_int, parse_seconds

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence

    RunArgs = tuple[str | None, dict[str, object]]


class Declined(Exception):
    """The command line needs click."""


def _spellings(table: Sequence[Opt]) -> dict[str, tuple[Opt, bool]]:
    """Every spelling -> (its option, the value a FLAG or SWITCH spelled so gives)."""
    words: dict[str, tuple[Opt, bool]] = {}
    for opt in table:
        if opt.kind == SWITCH:
            (pair,) = opt.decls
            on, off = pair.split("/")
            words[on], words[off] = (opt, True), (opt, False)
        else:
            for word in opt.decls:
                words[word] = (opt, True)
    return words


def _value(opt: Opt, text: str) -> object:
    """The value click's parameter type would make of `text`; Declined where it would refuse it."""
    try:
        if opt.value == NUMBER:
            return parse_int(text, opt.what)
        if opt.value == SECONDS:
            return parse_seconds(text)
    except ValueError:
        raise Declined from None
    if opt.value == CHOICE and text not in opt.choices:
        raise Declined
    if opt.value == PATH and not _readable_or_missing(text):
        raise Declined  # click.Path refuses an existing path it cannot read
    return text


def _readable_or_missing(path: str) -> bool:
    try:
        return os.access(path, os.R_OK) or not os.path.lexists(path)
    except ValueError:  # a NUL byte: only a caller in this process can pass one, never argv
        return False


def _read(args: Sequence[str], table: Sequence[Opt]) -> RunArgs:
    words = _spellings(table)
    values: dict[str, object] = {opt.dest: False if opt.kind == FLAG else opt.default for opt in table}
    listed: dict[str, list[object]] = {opt.dest: [] for opt in table if opt.kind == MULTIPLE}
    image: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg[:1] != "-" or arg == "-":
            if image is not None:
                raise Declined  # a second positional argument
            image = arg
            continue
        known = words.get(arg)
        if known is None:
            raise Declined  # an unknown word, --opt=value, bundled flags, --, -h, --help
        opt, flag_value = known
        if opt.kind in (FLAG, SWITCH):
            values[opt.dest] = flag_value
            continue
        if i == len(args):
            raise Declined  # the value is missing
        value = _value(opt, args[i])
        i += 1
        if opt.kind == MULTIPLE:
            listed[opt.dest].append(value)
        else:
            values[opt.dest] = value
    values.update((dest, tuple(given)) for dest, given in listed.items())  # click passes a tuple
    return image, values


def read_run_line(argv: Sequence[str]) -> RunArgs | None:
    """(image, values) for `pyvmm run ...` as click would pass them to `run`, or None when the
    line is not a run, or is one only click can read or refuse."""
    if not argv or argv[0] != "run":
        return None
    try:
        return _read(argv[1:], RUN_OPTIONS)
    except Declined:
        return None
