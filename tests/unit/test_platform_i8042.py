"""i8042 and port 0x92: the reset paths end the run with status 0 (QEMU -no-reboot); the usual
probes get sensible answers."""

from __future__ import annotations

import pytest

from tests.fakes import port_access
from vmm.devices import i8042 as K
from vmm.devices.i8042 import I8042, PortA
from vmm.verdict import Stop


def drain(k: I8042) -> list[int]:
    out = []
    while k.read_status() & K.STAT_OBF:
        out.append(k.read_data())
    return out


def test_status_at_start_is_empty_with_system_flag() -> None:
    s = I8042().read_status()
    assert s & K.STAT_OBF == 0 and s & K.STAT_IBF == 0
    assert s & K.STAT_SYS


def test_pulse_reset_stops_with_status_zero() -> None:
    verdict = I8042().write_command(0xFE)
    assert verdict == Stop(0, "guest reset the machine through the i8042 (-no-reboot)")


def test_reset_through_the_port() -> None:
    _, verdict = port_access(I8042(), 0x64, 1, 0xFE)
    assert isinstance(verdict, Stop) and verdict.status == 0 and not verdict.fatal


@pytest.mark.parametrize(("cmd", "resets"), [(0xF0, True), (0xFC, True), (0xFF, False), (0xF1, False)])
def test_pulse_commands_reset_only_when_line_0_is_pulsed(cmd: int, resets: bool) -> None:
    assert (I8042().write_command(cmd) is not None) == resets


def test_output_port_write_with_reset_bit_clear_resets() -> None:
    k = I8042()
    assert k.write_command(K.CMD_WRITE_OUTPUT) is None
    assert k.write_data(0x03) is None
    k.write_command(K.CMD_WRITE_OUTPUT)
    assert isinstance(k.write_data(0x02), Stop)


def test_self_tests_and_command_byte() -> None:
    k = I8042()
    k.write_command(K.CMD_SELF_TEST)
    assert drain(k) == [0x55]
    k.write_command(K.CMD_KBD_TEST)
    assert drain(k) == [0x00]
    k.write_command(K.CMD_READ_MODE)
    assert drain(k) == [K.MODE_DEFAULT]
    k.write_command(K.CMD_WRITE_MODE)
    k.write_data(0x65)
    k.write_command(K.CMD_READ_MODE)
    assert drain(k) == [0x65]
    assert k.read_status() & K.STAT_SYS  # mode bit 2 set it


def test_unknown_commands_are_ignored() -> None:
    k = I8042()
    assert k.write_command(0xC8) is None
    assert drain(k) == []


def test_keyboard_acknowledges() -> None:
    k = I8042()
    k.write_data(0xFF)
    assert drain(k) == [0xFA, 0xAA]
    k.write_data(0xED)
    k.write_data(0x07)
    assert drain(k) == [0xFA, 0xFA]
    k.write_data(0xF2)
    assert drain(k) == [0xFA, 0xAB, 0x83]
    assert k.read_data() == 0x83  # an empty buffer repeats the last byte


def test_port_92_fast_reset_and_a20() -> None:
    p = PortA()
    assert p.write(0x02) is None
    assert p.read() == 0x02
    assert p.write(0x03) == Stop(0, "guest reset the machine through port 0x92 (-no-reboot)")
    assert port_access(p, 0x92, 1)[0] == 0x03
    assert p.write(0x03) is None  # only a 0 -> 1 transition resets
