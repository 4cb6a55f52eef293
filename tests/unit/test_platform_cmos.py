"""CMOS/RTC: the memory-size bytes QEMU's pc_cmos_init fills, the CPU byte, and the clock in BCD and
binary, 24- and 12-hour modes, and as the guest sets it."""

from __future__ import annotations

import os
import time

import pytest

from tests.fakes import port_access
from vmm.devices import cmos as C
from vmm.devices.cmos import Cmos

MIB, GIB = 1 << 20, 1 << 30
T0 = 1700000000  # 2023-11-14 22:13:20 UTC, a Tuesday


def word(c: Cmos, lo: int) -> int:
    return c.read(lo) | c.read(lo + 1) << 8


@pytest.mark.parametrize(
    ("ram", "ext", "high"),
    [
        (16 * MIB, 15 * 1024, 0),  # extended memory in KiB above 1 MiB; nothing above 16 MiB
        (128 * MIB, 0xFFFF, (112 * MIB) >> 16),  # KiB count capped; 64 KiB units above 16 MiB
        (3 * GIB, 0xFFFF, (3 * GIB - 16 * MIB) >> 16),
    ],
)
def test_memory_bytes(ram: int, ext: int, high: int) -> None:
    c = Cmos(ram_below_4g=ram, ncpus=1, clock=lambda: T0)
    assert word(c, 0x15) == 640
    assert word(c, 0x17) == ext
    assert word(c, 0x30) == ext
    assert word(c, 0x34) == high
    assert [c.read(r) for r in (0x5B, 0x5C, 0x5D)] == [0, 0, 0]


def test_exact_values_for_3_gib() -> None:
    c = Cmos(ram_below_4g=3 * GIB, clock=lambda: T0)
    assert (c.read(0x34), c.read(0x35)) == (0x00, 0xBF)


def test_memory_above_4g_in_64k_units() -> None:
    c = Cmos(ram_below_4g=3 * GIB, ram_above_4g=2 * GIB, clock=lambda: T0)
    assert [c.read(r) for r in (0x5B, 0x5C, 0x5D)] == [0x00, 0x80, 0x00]


def test_small_ram() -> None:
    c = Cmos(ram_below_4g=512 * 1024, clock=lambda: T0)
    assert word(c, 0x15) == 512
    assert word(c, 0x17) == 0 and word(c, 0x34) == 0


@pytest.mark.parametrize("ncpus", [1, 2, 8])
def test_cpu_byte(ncpus: int) -> None:
    assert Cmos(ram_below_4g=16 * MIB, ncpus=ncpus).read(0x5F) == ncpus - 1


def test_status_registers() -> None:
    c = Cmos(ram_below_4g=16 * MIB, clock=lambda: T0)
    assert c.read(C.STATUS_A) & C.A_UIP == 0
    assert c.read(C.STATUS_B) == 0x02  # 24-hour, BCD
    assert c.read(C.STATUS_C) == 0
    assert c.read(C.STATUS_D) == 0x80
    c.write(C.STATUS_D, 0)
    c.write(C.STATUS_A, 0xFF)
    assert c.read(C.STATUS_D) == 0x80 and c.read(C.STATUS_A) == 0x7F


def test_rtc_bcd_from_a_fixed_clock() -> None:
    c = Cmos(ram_below_4g=16 * MIB, clock=lambda: T0)
    got = [c.read(r) for r in (0, 2, 4, 6, 7, 8, 9, 0x32)]
    assert got == [0x20, 0x13, 0x22, 3, 0x14, 0x11, 0x23, 0x20]


def test_rtc_binary_and_12_hour_modes() -> None:
    c = Cmos(ram_below_4g=16 * MIB, clock=lambda: T0)
    c.write(C.STATUS_B, C.B_24H | C.B_DM_BINARY)
    assert [c.read(r) for r in (0, 2, 4, 9)] == [20, 13, 22, 23]
    c.write(C.STATUS_B, 0)  # 12-hour BCD: 22h is 10 PM
    assert c.read(C.HOURS) == 0x90


def test_rtc_from_the_host_clock_is_plausible_bcd() -> None:
    c = Cmos(ram_below_4g=16 * MIB)
    regs = {r: c.read(r) for r in (0, 2, 4, 7, 8, 9, 0x32)}
    for v in regs.values():
        assert v >> 4 <= 9 and v & 0xF <= 9
    now = time.gmtime()
    assert 1 <= C.from_bcd(regs[8]) <= 12
    assert C.from_bcd(regs[0x32]) * 100 + C.from_bcd(regs[9]) in (now.tm_year, now.tm_year - 1)


def test_guest_sets_the_clock_under_the_set_bit() -> None:
    now = [float(T0)]
    c = Cmos(ram_below_4g=16 * MIB, clock=lambda: now[0])
    c.write(C.STATUS_B, C.B_SET | C.B_24H)
    for reg, v in ((C.YEAR, 0x99), (C.MONTH, 0x02), (C.DAY_OF_MONTH, 0x28), (C.CENTURY, 0x19)):
        c.write(reg, v)
    now[0] += 5  # the clock stands still while SET is on
    assert c.read(C.SECONDS) == 0x20
    c.write(C.STATUS_B, C.B_24H)
    now[0] += 3
    assert [c.read(r) for r in (C.SECONDS, C.DAY_OF_MONTH, C.MONTH, C.YEAR, C.CENTURY)] == [0x23, 0x28, 2, 0x99, 0x19]


def test_other_bytes_are_stored_and_index_masks_nmi() -> None:
    c = Cmos(ram_below_4g=16 * MIB, clock=lambda: T0)
    port_access(c, 0x70, 1, 0x80 | 0x40)
    assert c.index == 0x40 and c.nmi_masked
    port_access(c, 0x71, 1, 0xA5)
    assert port_access(c, 0x71, 1)[0] == 0xA5
    assert port_access(c, 0x70, 1)[0] & 0xFF == 0xFF


def test_impossible_dates_leave_the_clock_alone() -> None:
    c = Cmos(ram_below_4g=16 * MIB, clock=lambda: T0)
    c.write(C.MONTH, 0x13)
    c.write(C.HOURS, 0x25)
    c.write(C.YEAR, 0x00)  # 2000 is fine
    c.write(C.CENTURY, 0x00)  # the year 0 is not
    assert [c.read(r) for r in (C.HOURS, C.MONTH, C.YEAR, C.CENTURY)] == [0x22, 0x11, 0x00, 0x20]


def test_rtc_base_localtime_starts_at_the_hosts_zone() -> None:
    noon_utc = 1_764_763_200.0  # 2025-12-03 12:00:00 UTC
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC-05:30"  # POSIX sign: 5 h 30 min east of UTC
    time.tzset()
    try:
        local = Cmos(ram_below_4g=128 << 20, clock=lambda: noon_utc, localtime=True)
        utc = Cmos(ram_below_4g=128 << 20, clock=lambda: noon_utc)
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert (utc.read(0x04), utc.read(0x02)) == (0x12, 0x00)  # BCD 12:00
    assert (local.read(0x04), local.read(0x02)) == (0x17, 0x30)  # 17:30 local
