"""A refused command is one line even when the value it quotes has a newline in it (found by the
command-line fuzzer: click's "unexpected extra arguments" echoed one as is)."""

from __future__ import annotations

import pytest

from vmm.cli.commands import main
from vmm.cli.outcome import one_line


def test_control_characters_are_escaped() -> None:
    assert one_line("plain text, ünïcode") == "plain text, ünïcode"
    assert one_line("a\nb\tc\x1b[0m\u2028") == "a\\nb\\tc\\x1b[0m\\u2028"


@pytest.mark.parametrize(
    "argv",
    [["run", "x.bin", "--", "-x", "new\nline"], ["run", "no\nsuch\nimage"], ["bo\ngus"], ["run", "--mode", "a\nb"]],
)
def test_refusals_quoting_a_newline_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status = main(argv)
    err = capsys.readouterr().err
    assert status in (2, 4)
    assert err.count("\n") == 1 and err.startswith("pyvmm: "), err
