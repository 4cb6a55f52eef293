"""`python -m vmm.cli.launcher BINDIR`: the compiled launcher where a compiler is found, the
script itself (a `#!python -S` line) where none is; both find their script from any directory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from vmm.cli.launcher import COMMANDS, write_launchers

PYTHON = str(Path(sys.executable).parent / "python3")


def test_without_a_compiler_the_script_is_the_command(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for path in write_launchers(bin_dir, PYTHON, cc="/no/such/cc"):
        text = path.read_text()
        assert text.startswith(f"#!{PYTHON} -S\n")
        assert path.stat().st_mode & 0o111
        assert path.name in COMMANDS


def test_with_a_compiler_the_command_is_the_c_launcher(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "the README's requirements include gcc"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for path in write_launchers(bin_dir, PYTHON, cc=cc):
        data = path.read_bytes()
        assert data[:4] == b"\x7fELF"
        script = tmp_path / "libexec" / "pyvmm" / f"{path.name}.py"
        assert str(script).encode() in data  # an absolute path: the command runs from anywhere
        assert script.is_absolute() and script.exists()
