"""The `pyvmm` and `pyvmm-system-x86_64` launchers that `make setup` installs in the virtualenv's
bin directory, over the console scripts pip generates.

A pip-generated script runs after the interpreter's `site` module has processed every `.pth`
file, and its first line is an import: a Ctrl-C in those milliseconds (tens of them on a loaded
host) is a KeyboardInterrupt traceback that no code of pyvmm's can catch. So each command is a
small C program (launcher.c) that blocks SIGINT and execs the interpreter with -S on a script
written here. The script takes SIGINT over with builtin modules only (`_signal`, `posix`),
unblocks it (a Ctrl-C that came in the meantime was kept pending, and is delivered to pyvmm's
handler now), and then runs `site.main()` itself, which is what -S leaves out (documented for
exactly this use). Only a signal in the microseconds before the C program blocks it ends the
process by the signal itself, printing nothing, as it would any program.

Without a C compiler the script itself is installed as the command (a `#!python -S` line): then
the interpreter's own start-up, before the script's first line, is a window of a millisecond or
so in which Ctrl-C is still the interpreter's.

`python -m vmm.cli.launcher BINDIR` installs them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
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
# launcher.c blocked SIGINT before it started the interpreter: one sent since is delivered now
_signal.pthread_sigmask(_signal.SIG_UNBLOCK, [_signal.SIGINT])
import site

site.main()
import sys

from vmm.cli import {function}

sys.exit({function}())
"""


def launcher_text(python: str, function: str) -> str:
    from vmm.cli import INTERRUPTED_STATUS

    return _TEMPLATE.format(python=python, function=function, status=INTERRUPTED_STATUS)


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_launchers(bin_dir: Path, python: str, cc: str | None = None) -> list[Path]:
    """The commands in `bin_dir`: compiled launchers when a C compiler is found (`cc`, else $CC,
    else cc), the scripts themselves otherwise. Each is replaced whole, so a command that is
    running keeps the file it started from."""
    scripts = bin_dir.absolute().parent / "libexec" / "pyvmm"  # the launcher runs from any directory
    scripts.mkdir(parents=True, exist_ok=True)
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    written = []
    for name, function in COMMANDS.items():
        script = scripts / f"{name}.py"
        _replace(script, launcher_text(python, function).encode(), 0o755)
        path = bin_dir / name
        tmp = path.with_name(f".{name}.tmp")
        built = compiler is not None and _compile(compiler, tmp, python, script)
        if built:
            os.replace(tmp, path)
        else:
            _replace(path, script.read_bytes(), 0o755)
        written.append(path)
    return written


def _compile(compiler: str, out: Path, python: str, script: Path) -> bool:
    source = Path(__file__).with_name("launcher.c")
    defines = [f"-DPYTHON={_c_string(python)}", f"-DSCRIPT={_c_string(str(script))}"]
    # static first: no dynamic loader runs before main() blocks SIGINT (its time, a millisecond
    # on a loaded host, would be a window in which Ctrl-C kills the process silently)
    for static in (["-static"], []):
        try:
            done = subprocess.run(
                [*shlex.split(compiler), "-O2", "-Wall", *static, "-o", str(out), str(source), *defines],
                capture_output=True,
            )
        except OSError:  # no such compiler
            return False
        if done.returncode == 0:
            return True
    return False


def _replace(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


if __name__ == "__main__":
    bin_dir = Path(sys.argv[1])
    # the virtualenv's own interpreter (not the file it links to), so site.main() finds the venv
    for p in write_launchers(bin_dir, str(bin_dir.absolute() / "python3")):
        kind = "compiled launcher" if p.read_bytes()[:4] == b"\x7fELF" else "script"
        print(f"wrote {p} ({kind})")
