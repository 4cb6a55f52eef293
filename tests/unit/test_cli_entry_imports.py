"""The command's entry points take Ctrl-C over before pyvmm is imported, so they must import
nothing themselves: importing `vmm.cli` (and `vmm`, which every submodule import runs first) loads
no module the interpreter had not loaded already, and the launcher text takes SIGINT first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vmm.cli import INTERRUPTED_STATUS
from vmm.cli.launcher import COMMANDS, launcher_text
from vmm.errors import ExitStatus

ROOT = Path(__file__).resolve().parents[2]


def test_the_entry_status_is_the_documented_one() -> None:
    assert INTERRUPTED_STATUS == ExitStatus.INTERRUPTED == 130


def test_importing_the_entry_point_loads_nothing_new() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import vmm.cli; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True).stdout
    assert set(json.loads(out)) <= {"vmm", "vmm.cli", "_signal"}


def test_vmm_names_still_load_on_demand() -> None:
    import vmm

    assert vmm.Machine.__name__ == "Machine"
    assert vmm.ExitStatus.INTERRUPTED == 130
    from vmm import layout

    assert layout.__name__ == "vmm.layout"


def test_the_launcher_takes_sigint_before_site_and_any_import() -> None:
    for function in COMMANDS.values():
        text = launcher_text("/opt/venv/bin/python3", function)
        lines = text.splitlines()
        assert lines[0] == "#!/opt/venv/bin/python3 -S"
        code = text.split("\n", 1)[1]
        handler, unblock = code.index("_signal.signal(_signal.SIGINT"), code.index("_signal.pthread_sigmask(")
        assert handler < unblock < code.index("import site") < code.index("from vmm")
        compile(code, "launcher", "exec")
        assert f"from vmm.cli import {function}\n" in code
