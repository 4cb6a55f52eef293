"""How a command that failed says so: one line on stderr and the status `vmm.errors.status_of`
maps its error to. Both of the command-line readers (click's and `vmm.cli.run_args`) end here."""

from __future__ import annotations

import sys

from vmm.errors import ExitStatus, PyvmmError, status_of

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable


def one_line(message: str) -> str:
    """An error is one line even when it quotes a value with a newline (or another control
    character) in it: those are shown escaped, as repr() would show them."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def reported(command: Callable[[], int]) -> int:
    """`command`'s exit status; a pyvmm error or a Ctrl-C becomes one line and its status."""
    try:
        return command()
    except PyvmmError as e:
        details = getattr(e, "details", "")
        if details:
            say(details.rstrip())
        say(f"pyvmm: {one_line(str(e))}")
        return int(status_of(e))
    except KeyboardInterrupt:
        say("pyvmm: interrupted")
        return ExitStatus.INTERRUPTED
