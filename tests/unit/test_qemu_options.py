"""QEMU's spellings on the pyvmm command line: translated to pyvmm's options, or refused by name."""

from __future__ import annotations

import pytest

from vmm.cli.launch import parse_debug_exit, parse_device, parse_initrd, parse_module, parse_qemu_size, parse_smp
from vmm.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "size"), [("128", 128 << 20), ("128M", 128 << 20), ("1G", 1 << 30), ("size=64", 64 << 20)]
)
def test_dash_m_takes_mib_without_a_suffix(text: str, size: int) -> None:
    assert parse_qemu_size(text) == size


def test_smp_forms() -> None:
    assert parse_smp("4") == 4
    assert parse_smp("cpus=2,sockets=1") == 2
    with pytest.raises(ConfigError, match="'0' is not a positive number"):
        parse_smp("0")


def test_initrd_is_comma_separated_file_args_with_double_comma_escape() -> None:
    assert parse_initrd("a.img root=/dev/ram,b,c x,,y") == [("a.img", "root=/dev/ram"), ("b", ""), ("c", "x,y")]
    with pytest.raises(ConfigError, match="empty module entry"):
        parse_initrd("a,,,")


def test_module_takes_args_after_the_first_comma() -> None:
    assert parse_module("m.bin,one two") == ("m.bin", "one two")
    assert parse_module("m.bin") == ("m.bin", "")


def test_debug_exit_device() -> None:
    assert parse_device("isa-debug-exit,iobase=0x501,iosize=2") == ("isa-debug-exit", {"iobase": 0x501, "iosize": 2})
    assert parse_debug_exit("0x501:2") == (0x501, 2)
    assert parse_debug_exit(None) == (0xF4, 4)
    with pytest.raises(ConfigError, match="not a 1-, 2- or 4-byte port range"):
        parse_debug_exit("0xf4:3")
    with pytest.raises(ConfigError, match="takes iobase and iosize"):
        parse_device("isa-debug-exit,irq=5")
