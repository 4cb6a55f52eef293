"""QEMU's machine options (-machine, -global, -serial/-chardev, -rtc, ...) as pyvmm reads them:
what each asks of the machine, and one line naming what is refused."""

from __future__ import annotations

import re
from typing import Any

import pytest

from vmm.cli.qemu_options import (
    QemuMachine,
    machine_from_options,
    parse_global,
    parse_props,
    parse_rtc,
    serial_target,
)
from vmm.errors import ConfigError


def values(**given: Any) -> dict[str, Any]:
    """click's values for the options of QEMU_MACHINE_OPTIONS and -serial, with `given` set."""
    kw: dict[str, Any] = {
        "nodefaults": False, "globals_": (), "machine": (), "vm_name": None, "chardevs": (), "vga": None,
        "nic": None, "net": None, "no_user_config": False, "no_hpet": False, "rtc": None, "serial": (), "cpu": None,
    }  # fmt: skip
    kw.update(given)
    return kw


def test_defaults_ask_for_nothing_and_consume_every_value() -> None:
    kw = values()
    assert machine_from_options(kw) == QemuMachine()
    assert kw == {}


def test_runner_line_options() -> None:
    kw = values(
        nodefaults=True,
        globals_=("kvm-pit.lost_tick_policy=discard",),
        machine=("accel=kvm",),
        serial=("stdio",),
        vga="none",
        no_user_config=True,
        no_hpet=True,
        vm_name="t1",
    )
    got = machine_from_options(kw)
    assert got == QemuMachine(pit_reinject=False, serial="stdio")


def test_machine_properties() -> None:
    assert machine_from_options(values(machine=("pc,accel=kvm,pit=off",))).pit is False
    assert machine_from_options(values(machine=("kernel-irqchip=off",))).irqchip is False
    assert machine_from_options(values(machine=("type=pc-i440fx-7.2", "kernel-irqchip=on"))).irqchip is True


@pytest.mark.parametrize(
    ("machine", "message"),
    [
        ("q35", "-machine q35 is not supported"),
        ("accel=tcg", "-machine accel=tcg is not supported"),
        ("kernel-irqchip=split", "kernel-irqchip=split is not supported: pyvmm has no userspace PIC"),
        ("pit=maybe", "-machine pit=maybe is neither on nor off"),
        ("pc,smm=off", "-machine property 'smm' is not supported"),
        ("pc,accel", "'accel' is not KEY=VALUE"),
    ],
)
def test_machine_refusals_name_the_property(machine: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        machine_from_options(values(machine=(machine,)))


def test_global_accepts_the_lost_tick_policy_and_refuses_others_by_name() -> None:
    assert parse_global("kvm-pit.lost_tick_policy=delay") == ("kvm-pit", "lost_tick_policy", "delay")
    assert machine_from_options(values(globals_=("kvm-pit.lost_tick_policy=delay",))).pit_reinject is True
    with pytest.raises(ConfigError, match=re.escape("-global isa-fdc.driveA is not supported")):
        machine_from_options(values(globals_=("isa-fdc.driveA=none",)))
    with pytest.raises(ConfigError, match=re.escape("policy is delay or discard")):
        machine_from_options(values(globals_=("kvm-pit.lost_tick_policy=slew",)))
    with pytest.raises(ConfigError, match=re.escape("is not DRIVER.PROP=VALUE")):
        parse_global("lost_tick_policy")


def test_props_split_on_single_commas_only() -> None:
    assert parse_props("file,id=c0,path=a,,b", "-chardev", leading_type=True) == (
        "file", [("id", "c0"), ("path", "a,b")]
    )


def test_serial_targets() -> None:
    assert serial_target((), (), nodefaults=False) is None
    assert serial_target((), (), nodefaults=True) == "none"
    assert serial_target(("mon:stdio",), (), nodefaults=True) == "stdio"
    assert serial_target(("file:/tmp/x",), (), nodefaults=False) == "file:/tmp/x"
    assert serial_target(("chardev:c0",), ("file,id=c0,path=/tmp/out",), nodefaults=False) == "file:/tmp/out"
    assert serial_target(("chardev:s",), ("stdio,id=s,signal=off",), nodefaults=False) == "stdio"
    assert serial_target(("chardev:n",), ("null,id=n",), nodefaults=False) == "null"


@pytest.mark.parametrize(
    ("serials", "chardevs", "message"),
    [
        (("pty",), (), "-serial pty is not supported"),
        (("stdio", "stdio"), (), "given 2 times: pyvmm has only COM1"),
        (("chardev:x",), (), "no -chardev with id 'x'"),
        (("chardev:c",), ("socket,id=c,path=/s",), "-chardev socket is not supported"),
        (("chardev:c",), ("file,id=c",), "a file backend needs path="),
        (("chardev:c",), ("stdio,id=c,mux=on",), "property 'mux' is not supported"),
        ((), ("stdio",), "has no id="),
    ],
)
def test_serial_refusals(serials: tuple[str, ...], chardevs: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        serial_target(serials, chardevs, nodefaults=False)


def test_rtc_base() -> None:
    assert parse_rtc(None) is False
    assert parse_rtc("base=utc,clock=host") is False
    assert parse_rtc("base=localtime") is True
    with pytest.raises(ConfigError, match=re.escape("-rtc clock=vm is not supported")):
        parse_rtc("clock=vm")
    with pytest.raises(ConfigError, match=re.escape("-rtc base=2006-06-17 is not supported")):
        parse_rtc("base=2006-06-17")


@pytest.mark.parametrize("name", ["vga", "nic", "net"])
def test_absent_devices_only_as_none(name: str) -> None:
    assert machine_from_options(values(**{name: "none"})) == QemuMachine()
    with pytest.raises(ConfigError, match=re.escape(f"-{name} std is not supported")):
        machine_from_options(values(**{name: "std"}))
