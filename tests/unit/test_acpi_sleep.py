"""S3 pieces without KVM: the RTC alarm's delay and flags, and the real-mode state at the FACS
waking vector that the board's suspend enters."""

from __future__ import annotations

import calendar

from vmm.board.sleep import resume_state
from vmm.cpu.modes import CR0_PE, CR0_PG
from vmm.devices.cmos import Cmos

NOON = calendar.timegm((2026, 12, 3, 12, 0, 0, 0, 0, 0)) + 0.25


def cmos() -> Cmos:
    return Cmos(ram_below_4g=128 << 20, clock=lambda: NOON)


def test_alarm_off_until_aie() -> None:
    c = cmos()
    for reg, v in ((1, 0x02), (3, 0x00), (5, 0x12)):  # 12:00:02 in BCD
        c.write(reg, v)
    assert c.alarm_delay() is None
    c.write(0x0B, c.read(0x0B) | 0x20)
    assert c.alarm_delay() == 1.75


def test_dont_care_bytes_and_the_next_day() -> None:
    c = cmos()
    c.write(0x0B, 0x20 | 0x02 | 0x04)  # AIE, 24-hour, binary
    for reg, v in ((1, 30), (3, 0xFF), (5, 0xFF)):  # every minute at :30
        c.write(reg, v)
    assert c.alarm_delay() == 29.75
    for reg, v in ((1, 0), (3, 0), (5, 12)):  # 12:00:00 has just passed: tomorrow
        c.write(reg, v)
    assert c.alarm_delay() == 86400 - 0.25


def test_status_c_reads_the_alarm_once() -> None:
    c = cmos()
    assert c.read(0x0C) == 0
    c.write(0x0B, 0x22)
    c.raise_alarm()
    assert c.read(0x0C) == 0xA0 and c.read(0x0C) == 0  # IRQF | AF, cleared by the read


def test_resume_enters_real_mode_as_a_bios_does() -> None:
    s = resume_state(0x9A010)
    cs = s.segments["cs"]
    assert (cs.selector, cs.base, s.rip) == (0x9A01, 0x9A010, 0)
    assert not s.cr0 & (CR0_PE | CR0_PG) and s.efer == 0 and s.cr4 == 0
    assert resume_state(0x60000).segments["cs"].selector == 0x6000
