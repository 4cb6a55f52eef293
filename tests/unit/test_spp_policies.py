"""The example SPP policies on synthetic events, policy-file loading, and the `--spp`/`--spp-file`
command-line errors found before /dev/kvm is opened (those needing a VM are in
tests/kvm/test_spp_cli.py). No KVM needed here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm.cli.policyfile import load_policy
from vmm.errors import ConfigError, ExitStatus, PyvmmError, UserCodeError, status_of
from vmm.spp.controller import Spp
from vmm.spp.event import Allow, Deny, SppEvent, StopVm
from vmm.spp.host import SppHost
from vmm.spp.policies import BUILTIN
from vmm.spp.policies.allow_rip_range import make_policy


def event(gpa: int = 0x300080, rip: int | None = 0x100123) -> SppEvent:
    return SppEvent(gpa, 0xFFFFFFFD, 0, rip, "software", gpa - 4, 8, b"\x01\x02\x03\x04\x05\x06\x07\x08")


def fresh(name: str) -> ModuleType:
    """A newly executed copy of a built-in policy module: its module-level state starts over."""
    spec = importlib.util.spec_from_file_location(f"policy_under_test_{name}", BUILTIN[name])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _NoBackend:
    """Enough of a backend for a controller that only collects policies."""

    name = "none"

    def apply(self, pages: list[int]) -> None:
        raise AssertionError("nothing here changes protection")

    def run_started(self) -> None: ...

    def on_kick(self, vcpu: Any) -> None: ...

    def run_ended(self) -> None: ...


def bare_spp() -> Spp:
    return Spp(cast(SppHost, None), lambda spp: _NoBackend())


# --- the example policies ----------------------------------------------------------------------
def test_builtin_names() -> None:
    assert set(BUILTIN) == {"log-and-deny", "count-and-stop", "allow-rip-range"}


def test_log_and_deny_writes_one_line_and_denies(capsys: pytest.CaptureFixture[str]) -> None:
    policy = fresh("log-and-deny").policy
    ev = event()
    assert isinstance(policy(ev), Deny)
    err = capsys.readouterr().err
    assert err == f"spp: denied {ev.describe()}\n"
    assert "sub-page 1 of page 0x300000" in err and "0x300080" in err and "rip 0x100123" in err


def test_count_and_stop_stops_at_the_nth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYVMM_SPP_LIMIT", "3")
    policy = fresh("count-and-stop").policy
    verdicts = [policy(event(0x300080 + i)) for i in range(3)]
    assert [type(v) for v in verdicts] == [Deny, Deny, StopVm]
    assert verdicts[2].reason == "3 SPP violations (limit 3)"


def test_count_and_stop_defaults_to_ten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYVMM_SPP_LIMIT", raising=False)
    policy = fresh("count-and-stop").policy
    verdicts = [policy(event()) for _ in range(10)]
    assert all(isinstance(v, Deny) for v in verdicts[:9])
    assert isinstance(verdicts[9], StopVm)


@pytest.mark.parametrize(
    ("rip", "allowed"),
    [(0x1000, True), (0x1FFF, True), (0x2000, False), (0xFFF, False), (None, False)],
    ids=["start", "last", "end-excluded", "below", "rip-unknown"],
)
def test_allow_rip_range(rip: int | None, allowed: bool) -> None:
    verdict = make_policy(0x1000, 0x2000)(event(rip=rip))
    assert isinstance(verdict, Allow if allowed else Deny)


def test_allow_rip_range_by_name_reads_its_range_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYVMM_ALLOW_RIP", "0x100000-0x100200")
    spp = bare_spp()
    load_policy("allow-rip-range", spp)
    assert len(spp.policies) == 1
    assert isinstance(spp.policies[0](event(rip=0x1001FF)), Allow)
    assert isinstance(spp.policies[0](event(rip=0x100200)), Deny)


@pytest.mark.parametrize("setting", [None, "", "0x100000", "zz-0x100200"])
def test_allow_rip_range_without_a_range_says_what_to_set(monkeypatch: pytest.MonkeyPatch, setting: str | None) -> None:
    # the command line's mistake, not the policy failing: one line and status 2, no traceback
    if setting is None:
        monkeypatch.delenv("PYVMM_ALLOW_RIP", raising=False)
    else:
        monkeypatch.setenv("PYVMM_ALLOW_RIP", setting)
    with pytest.raises(ConfigError, match="PYVMM_ALLOW_RIP") as e:
        load_policy("allow-rip-range", bare_spp())
    assert status_of(e.value) == ExitStatus.USAGE
    assert not isinstance(e.value, UserCodeError) and e.value.details == ""


def test_a_builtin_policy_by_name_is_added_as_is() -> None:
    spp = bare_spp()
    load_policy("log-and-deny", spp)
    assert [p.__name__ for p in spp.policies] == ["policy"]


# --- policy files --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "error", "status", "words"),
    [
        ("def policy(event:\n", ConfigError, ExitStatus.USAGE, "line 1: syntax error"),
        ("raise RuntimeError('boom at import')\n", UserCodeError, ExitStatus.HANDLER_ERROR, "boom at import"),
        ("x = 1\n", ConfigError, ExitStatus.USAGE, "defines neither policy(event) nor setup(spp)"),
        ("policy = 42\n", ConfigError, ExitStatus.USAGE, "defines neither policy(event) nor setup(spp)"),
        ("def setup(spp):\n    raise KeyError('x')\n", UserCodeError, ExitStatus.HANDLER_ERROR, "setup() raised"),
    ],
    ids=["syntax-error", "raises-at-import", "no-policy", "policy-not-callable", "setup-raises"],
)
def test_bad_policy_files(tmp_path: Path, text: str, error: type[Exception], status: int, words: str) -> None:
    path = tmp_path / "mypolicy.py"
    path.write_text(text)
    with pytest.raises(error) as e:
        load_policy(str(path), bare_spp())
    assert words in str(e.value)
    assert str(path) in str(e.value)
    assert isinstance(e.value, PyvmmError) and status_of(e.value) == status


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(str(tmp_path / "nope.py"), bare_spp())


def test_a_policy_file_with_setup_adds_its_own_policies(tmp_path: Path) -> None:
    path = tmp_path / "two.py"
    path.write_text(
        "from vmm.spp.event import ALLOW\n"
        "def first(event):\n    return None\n"
        "def second(event):\n    return ALLOW\n"
        "def setup(spp):\n    spp.add_policy(first)\n    spp.add_policy(second)\n"
    )
    spp = bare_spp()
    load_policy(str(path), spp)
    assert [p.__name__ for p in spp.policies] == ["first", "second"]
    assert isinstance(spp.judge(event()), Allow)  # first passes, second decides
    assert spp.events == [event()]


# --- region errors on the command line, before any VM exists --------------------------------------
IMAGE = "guests/build/spp-stores.bin"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--spp", "0x300010"], "--spp 0x300010: SPP page address 0x300010 is not 4 KiB-aligned"),
        (["--spp", "0x300000:0x1ffffffff"], "write mask 0x1ffffffff does not fit in 32 bits"),
        (["--spp", "0x300000:banana"], "bad SPP region '0x300000:banana'"),
        (["--spp", "0x300100-0x300000"], "is empty (end must be above start)"),
        (
            ["--spp", "0x300000:0xff", "--spp", "0x300000:0xf0"],
            "--spp 0x300000:0xf0: page 0x300000 is given mask 0x000000f0 here and 0x000000ff at --spp 0x300000:0xff",
        ),
    ],
    ids=["unaligned", "mask-too-wide", "mask-not-a-number", "empty-range", "disagreeing-masks"],
)
def test_bad_spp_regions(args: list[str], words: str) -> None:
    guest("spp-stores")
    line = one_line_error(pyvmm("run", IMAGE, *args), ExitStatus.USAGE)
    assert words in line


def test_spp_file_bad_line_names_file_and_line(tmp_path: Path) -> None:
    guest("spp-stores")
    spec = tmp_path / "regions.txt"
    spec.write_text("# protected pages\n0x300000:0xffff0000  0x301000\n\n0x302000:zz   # typo\n")
    line = one_line_error(pyvmm("run", IMAGE, "--spp-file", str(spec)), ExitStatus.USAGE)
    assert f"{spec}:4: bad SPP region '0x302000:zz'" in line


def test_spp_file_disagreeing_with_the_command_line(tmp_path: Path) -> None:
    guest("spp-stores")
    spec = tmp_path / "regions.txt"
    spec.write_text("0x300000:0xffff0000\n")
    line = one_line_error(
        pyvmm("run", IMAGE, "--spp", "0x300000:0x0000ffff", "--spp-file", str(spec)), ExitStatus.USAGE
    )
    assert f"{spec}:1: page 0x300000 is given mask 0xffff0000 here and 0x0000ffff at --spp 0x300000:0x0000ffff" in line


def test_missing_spp_file(tmp_path: Path) -> None:
    guest("spp-stores")
    line = one_line_error(pyvmm("run", IMAGE, "--spp-file", str(tmp_path / "none.txt")), ExitStatus.USAGE)
    assert "does not exist" in line
