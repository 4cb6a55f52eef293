"""The `pyvmm` and `pyvmm-system-x86_64` commands: options (QEMU's spellings too), launching a run,
and reporting how it ended (statuses come from `vmm.errors.status_of`).

The console scripts enter here, and this module imports nothing the interpreter has not already
loaded: a Ctrl-C while the rest of pyvmm is still being imported (a quarter of a second on a busy
host) must end the process with one line and status 130, not a KeyboardInterrupt traceback from
whatever module was loading. So the first thing either entry point does is take SIGINT over
through `_signal` (`signal` itself would import `enum` first); the runner replaces that handler
with its own for the run and puts it back afterwards.
"""

import _signal  # type: ignore[import-not-found]  # the C half of `signal`; it has no stub
import os
import sys

# vmm.errors.ExitStatus.INTERRUPTED; that module imports enum, so the value is repeated here (a unit
# test keeps the two equal)
INTERRUPTED_STATUS = 130


def _interrupted(signum: int, frame: object) -> None:
    # Nothing is open yet that the kernel would not close: end at once, whatever was loading.
    os.write(2, b"pyvmm: interrupted\n")
    os._exit(INTERRUPTED_STATUS)


def take_sigint() -> None:
    """Ctrl-C from here on ends the process with one line and status 130 (until a run installs its
    own handler). Only for a process whose main program is pyvmm's command line."""
    _signal.signal(_signal.SIGINT, _interrupted)


def main(argv: list[str] | None = None) -> int:
    """`pyvmm`."""
    take_sigint()
    from vmm.cli.entry import run_command_line

    return run_command_line(sys.argv[1:] if argv is None else argv)


def qemu_main(argv: list[str] | None = None) -> int:
    """`pyvmm-system-x86_64`."""
    take_sigint()
    from vmm.cli.qemu_command import main as qemu_command_main

    return qemu_command_main(sys.argv[1:] if argv is None else argv)


__all__ = ["INTERRUPTED_STATUS", "main", "qemu_main", "take_sigint"]
