"""`pyvmm run` with SPP options, for the errors found only once a VM exists (a region outside
its RAM, policy files, which load after the VM is built) and for a working policy end to end.
(Region syntax errors, found before /dev/kvm is opened, are in tests/unit/test_spp_policies.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm

STORES = "guests/build/spp-stores.bin"  # with no host driver it reads an empty batch and finishes
DEMO = "guests/build/spp-demo.bin"


@pytest.fixture(autouse=True)
def _images() -> None:
    guest("spp-stores")
    guest("spp-demo")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--spp", "0x8000000"], "SPP page 0x8000000 is not in guest RAM"),  # the first byte past 128 MiB
        (["--mem", "4M", "--spp", "0x400000-0x400080"], "SPP page 0x400000 is not in guest RAM"),
        (["--spp", "0x7fff000-0x8000100"], "SPP page 0x8000000 is not in guest RAM"),
    ],
    ids=["page", "byte-range-beyond-smaller-ram", "byte-range-running-off-the-end"],
)
def test_region_outside_ram(args: list[str], words: str) -> None:
    line = one_line_error(pyvmm("run", STORES, *args), ExitStatus.USAGE)
    assert words in line


def test_missing_policy_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    line = one_line_error(pyvmm("run", STORES, "--policy", str(missing)), ExitStatus.USAGE)
    assert line == f"pyvmm: policy file '{missing}' does not exist"


def test_unknown_builtin_name_is_taken_as_a_path() -> None:
    line = one_line_error(pyvmm("run", STORES, "--policy", "log-and-allow"), ExitStatus.USAGE)
    assert line == "pyvmm: policy file 'log-and-allow' does not exist"


def test_policy_file_with_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import os\ndef policy(event)\n    return None\n")
    line = one_line_error(pyvmm("run", STORES, "--policy", str(path)), ExitStatus.USAGE)
    assert line.startswith(f"pyvmm: policy file '{path}' line 2: syntax error")


def test_policy_file_defining_no_policy(tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("LIMIT = 3\n")
    line = one_line_error(pyvmm("run", STORES, "--policy", str(path)), ExitStatus.USAGE)
    assert line == f"pyvmm: policy file '{path}' defines neither policy(event) nor setup(spp)"


def test_policy_file_raising_at_import(tmp_path: Path) -> None:
    """User code that raises gets its own traceback shown (trimmed to the user's frames) before
    the one `pyvmm:` line, and the handler-error status."""
    path = tmp_path / "raises.py"
    path.write_text("def helper():\n    raise ValueError('no config')\n\nhelper()\n")
    proc = pyvmm("run", STORES, "--policy", str(path))
    err = proc.stderr.decode().splitlines()
    assert proc.returncode == ExitStatus.HANDLER_ERROR
    assert proc.stdout == b""
    assert err[-1] == f"pyvmm: policy file '{path}' raised while loading: ValueError('no config')"
    assert sum(line.startswith("pyvmm: ") for line in err) == 1
    assert f'File "{path}", line 4' in proc.stderr.decode()
    assert "ValueError: no config" in err
    assert not any("vmm/userfile.py" in line for line in err)  # pyvmm's own frames are trimmed


def test_log_and_deny_on_the_demo() -> None:
    proc = pyvmm("run", DEMO, "--policy", "log-and-deny")
    out, err = proc.stdout.decode(), proc.stderr.decode().splitlines()
    assert proc.returncode == ExitStatus.OK, err
    assert "kernel: syscall 1 -> sys_hello (table intact)\n" in out
    assert "kernel: counters = 1000 (writes to the rest of the page still work)\n" in out
    denied = [line for line in err if line.startswith("spp: denied ")]
    assert len(denied) == 1
    assert "8-byte write at 0x101008" in denied[0] and "sub-page 0 of page 0x101000" in denied[0]


def test_count_and_stop_with_a_region_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A region given with --spp is in force from the guest's first instruction: the demo's
    start-up code clearing .bss (the table page at 0x101000) is already the first violation."""
    monkeypatch.setenv("PYVMM_SPP_LIMIT", "1")
    proc = pyvmm("run", DEMO, "--spp", "0x101000:0xfffffffe", "--policy", "count-and-stop")
    err = proc.stderr.decode()
    assert proc.returncode == ExitStatus.SPP_STOP, err
    assert "pyvmm: 1 SPP violations (limit 1): SPP violation: 8-byte write at 0x101000 " in err
    assert "hits denied sub-page 0 of page 0x101000 (mask 0xfffffffe)" in err
    assert proc.stdout == b""  # stopped before the guest printed anything



def test_allow_rip_range_without_its_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # found by the command-line fuzzer: a missing setting was reported with pyvmm's own traceback
    monkeypatch.delenv("PYVMM_ALLOW_RIP", raising=False)
    line = one_line_error(pyvmm("run", str(guest("spp-demo")), "--policy", "allow-rip-range"), ExitStatus.USAGE)
    assert line.startswith('pyvmm: --policy allow-rip-range: set PYVMM_ALLOW_RIP="START-END"')
