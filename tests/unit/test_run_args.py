"""A plain `pyvmm run` line is read from the option table without click (vmm.cli.run_args); it must
give `run` exactly the values click gives, and leave to click every line click would refuse or
answer with help."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmm.cli.commands import run
from vmm.cli.option_table import (
    CHOICE,
    FLAG,
    NUMBER,
    PATH,
    RUN_OPTIONS,
    SECONDS,
    SWITCH,
    Opt,
)
from vmm.cli.run_args import read_run_line

IMAGE = "guests/build/hello-long.bin"


def click_values(args: list[str]) -> dict[str, object] | None:
    """What click passes `run` for `args`, or None where it refuses them."""
    try:
        with run.make_context("run", list(args)) as ctx:
            return dict(ctx.params)
    except click.UsageError:
        return None


def read(args: list[str]) -> dict[str, object] | None:
    line = read_run_line(["run", *args])
    if line is None:
        return None
    image, values = line
    return {"image": image, **values}


RUNNER_LINES = [
    ["-q", IMAGE],
    [IMAGE, "--mem", "64M", "--timeout", "5", "--stats"],
    # kvm-unit-tests' x86 run line, as its runner builds it
    ["-nodefaults", "-device", "pc-testdev", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-serial", "stdio",
     "-device", "pci-testdev", "-machine", "accel=kvm", "-kernel", "x86/msr.flat", "-smp", "1", "-append", "",
     "-cpu", "max"],
    # a kernel self-test runner: one dash, an initrd, no reboot, a gdb stub waiting
    ["-kernel", "bzImage", "-m", "512", "-smp", "2", "-initrd", "mods.cpio", "-no-reboot", "-s", "-S",
     "-enable-kvm", "-nographic", "-display", "none", "-name", "t1", "-no-user-config"],
    [IMAGE, "--spp", "0x200000:0xff", "--policy", "log-and-deny", "--spp-backend", "software", "--irqchip",
     "--no-irqchip", "--load", "0x100000", "--mode", "protected", "-q", "-q"],
]  # fmt: skip


@pytest.mark.parametrize("args", RUNNER_LINES)
def test_runner_lines_are_read_without_click_as_click_reads_them(args: list[str]) -> None:
    ours = read(args)
    assert ours is not None, args
    assert ours == click_values(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--help", IMAGE],
        ["-h"],
        [IMAGE, "--bogus"],
        [IMAGE, "-bogus"],
        [IMAGE, "--mem=64M"],
        [IMAGE, "-qS"],
        ["--", IMAGE],
        [IMAGE, "--mem"],
        [IMAGE, "--mem", "lots"],
        [IMAGE, "--timeout", "nan"],
        [IMAGE, "--mode", "virtual-8086"],
        [IMAGE, "second.bin"],
    ],
)
def test_lines_only_click_can_answer_are_left_to_it(args: list[str]) -> None:
    assert read(args) is None


def test_a_line_that_is_not_a_run_is_left_to_click() -> None:
    assert read_run_line([]) is None
    assert read_run_line(["info"]) is None
    assert read_run_line(["restore", "snap.bin"]) is None
    assert read_run_line(["--help", "run", IMAGE]) is None


def test_an_existing_file_click_cannot_read_is_left_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As root every file is readable, so the refusal is shown with access(2) answering no (click.Path
    # and the reader both ask os.access)
    handlers = tmp_path / "handlers.py"
    handlers.write_text("")
    args = [IMAGE, "--handlers", str(handlers)]
    assert read(args) is not None
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert read(args) is None
    assert click_values(args) is None
    assert read([IMAGE, "--handlers", str(tmp_path / "missing.py")]) is not None  # what is not there is not read


def good_value(opt: Opt) -> st.SearchStrategy[str]:
    if opt.value == NUMBER:
        return st.sampled_from(["0", "4096", "0x1000", "16M", "2G"])
    if opt.value == SECONDS:
        return st.sampled_from(["1", "0.25", "600"])
    if opt.value == CHOICE:
        return st.sampled_from(opt.choices)
    if opt.value == PATH:
        return st.sampled_from(["/no/such/file", "out.json", IMAGE, "-"])
    # anything an argument vector can hold (no NUL), a leading dash and "help" included
    return st.text(st.characters(blacklist_characters="\0"), max_size=8)


def spelled(opt: Opt) -> st.SearchStrategy[list[str]]:
    if opt.kind == SWITCH:
        return st.sampled_from([[w] for w in opt.decls[0].split("/")])
    words = st.sampled_from(opt.decls)
    if opt.kind == FLAG:
        return words.map(lambda w: [w])
    return st.tuples(words, good_value(opt)).map(list)


GOOD_OPTION = st.sampled_from(RUN_OPTIONS).flatmap(spelled)
GOOD_LINE = st.tuples(st.lists(GOOD_OPTION, max_size=6), st.sampled_from([None, IMAGE, "a b.elf"])).map(
    lambda parts: [w for opt in parts[0] for w in opt] + ([parts[1]] if parts[1] is not None else [])
)
NOISE = st.sampled_from(
    ["--bogus", "-bogus", "--mem=1M", "-qS", "--", "-h", "--help", "--timeout", "nan", "-5", "extra.bin", "-"]
)


@settings(max_examples=300, deadline=None)
@given(GOOD_LINE)
def test_a_line_of_good_options_is_read_as_click_reads_it(args: list[str]) -> None:
    ours = read(args)
    assert ours is not None, args
    assert ours == click_values(args)


@settings(max_examples=300, deadline=None)
@given(GOOD_LINE, st.lists(st.tuples(st.integers(0, 12), NOISE), max_size=3))
def test_whatever_is_read_without_click_click_reads_alike(args: list[str], noise: list[tuple[int, str]]) -> None:
    for at, word in noise:
        args.insert(min(at, len(args)), word)
    ours = read(args)
    if ours is not None:
        assert ours == click_values(args), args
