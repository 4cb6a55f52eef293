"""The `pyvmm` and `pyvmm-system-x86_64` launchers that `make setup` writes into the virtualenv's
bin directory, over the console scripts pip generates.

A pip-generated script is run after the interpreter's `site` module has processed every `.pth`
file, and its own first line is an import: a Ctrl-C in those milliseconds (tens of them on a
loaded host) is a KeyboardInterrupt traceback that no code of pyvmm's can catch. The launcher
starts the interpreter with -S, takes SIGINT over with builtin modules only (`_signal`, `posix`),
and then runs `site.main()` itself, which is what -S leaves out (documented for exactly this use).
Before its first line the interpreter's own handler is in place for well under a millisecond
(setting up sys.stdout and sys.stderr), and before that SIGINT simply ends the process, as it
does any program's.

`python -m vmm.cli.launcher BINDIR` writes them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# name in bin/ -> the function of vmm.cli that the command runs
COMMANDS = {"pyvmm": "main", "pyvmm-system-x86_64": "qemu_main"}

_TEMPLATE = """\
#!{python} -S
# Written by `make setup` (vmm/cli/launcher.py): Ctrl-C is pyvmm's before `site` runs.
import _signal
import posix


def _interrupted(signum, frame):
    posix.write(2, b"pyvmm: interrupted\\n")
    posix._exit({status})


_signal.signal(_signal.SIGINT, _interrupted)
import site

site.main()
import sys

from vmm.cli import {function}

sys.exit({function}())
"""


def launcher_text(python: str, function: str) -> str:
    from vmm.cli import INTERRUPTED_STATUS

    return _TEMPLATE.format(python=python, function=function, status=INTERRUPTED_STATUS)


def write_launchers(bin_dir: Path, python: str) -> list[Path]:
    written = []
    for name, function in COMMANDS.items():
        path = bin_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(launcher_text(python, function))
        tmp.chmod(0o755)
        os.replace(tmp, path)  # a command that is running keeps the file it started from
        written.append(path)
    return written


if __name__ == "__main__":
    bin_dir = Path(sys.argv[1])
    # the virtualenv's own interpreter (not the file it links to), so site.main() finds the venv
    for p in write_launchers(bin_dir, str(bin_dir.absolute() / "python3")):
        print(f"wrote {p}")
