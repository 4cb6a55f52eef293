"""The ACPI PM registers: PM1a status (write 1 to clear), enable, control with SCI_EN from boot and
the sleep request, and the 24-bit 3.579545 MHz PM timer."""

from __future__ import annotations

from tests.fakes import port_access
from vmm.devices.acpi_pm import POWER_OFF_REASON, S3_REASON, AcpiPm
from vmm.errors import ExitStatus
from vmm.verdict import Stop


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_timer_counts_at_3_579545_mhz_in_24_bits() -> None:
    clock = Clock()
    pm = AcpiPm(clock)
    assert port_access(pm, 0x608, 4)[0] == 0
    clock.t += 1.0
    assert port_access(pm, 0x608, 4)[0] == 3_579_545
    clock.t += 5.0  # 6 s: 21,477,270 ticks wrap at 2^24
    assert port_access(pm, 0x608, 4)[0] == 21_477_270 & 0xFFFFFF
    assert port_access(pm, 0x60A, 2)[0] == (21_477_270 & 0xFFFFFF) >> 16


def test_status_is_write_one_to_clear_and_enable_is_plain() -> None:
    pm = AcpiPm(Clock())
    pm.status = 1 << 15 | 1 << 10
    port_access(pm, 0x600, 2, 1 << 10)
    assert port_access(pm, 0x600, 2)[0] == 1 << 15
    port_access(pm, 0x602, 2, 1 << 10)
    assert port_access(pm, 0x602, 2)[0] == 1 << 10
    assert port_access(pm, 0x600, 4)[0] == (1 << 10) << 16 | 1 << 15  # a dword covers STS and EN


def test_sci_en_from_boot_and_sleep_requests() -> None:
    pm = AcpiPm(Clock())
    assert port_access(pm, 0x604, 2)[0] == 1
    assert port_access(pm, 0x604, 2, 1 | 5 << 10)[1] is None  # SLP_TYP without SLP_EN: nothing
    assert port_access(pm, 0x604, 2, 1 | 5 << 10 | 1 << 13)[1] is None  # a type with no state: ignored
    assert port_access(pm, 0x604, 2)[0] & 1 << 13 == 0  # SLP_EN reads 0
    assert port_access(pm, 0x604, 2, 1 | 1 << 10 | 1 << 13)[1] == Stop(ExitStatus.SLEEP_NOT_IMPLEMENTED, S3_REASON)
    assert port_access(pm, 0x604, 2, 1 | 0 << 10 | 1 << 13)[1] == Stop(ExitStatus.OK, POWER_OFF_REASON)


def test_the_power_button_and_the_sci_level() -> None:
    lines: list[tuple[int, int]] = []
    pm = AcpiPm(irq_line=lambda irq, level: lines.append((irq, level)))
    pm.press_power_button()  # PWRBTN_EN clear: QEMU sets nothing, no SCI
    assert pm.read(0, 2) == 0 and lines == []
    port_access(pm, 0x602, 2, 1 << 8)  # PWRBTN_EN
    pm.press_power_button()
    assert pm.read(0, 2) == 1 << 8 and lines == [(9, 1)]  # the SCI is ISA IRQ 9, a level
    port_access(pm, 0x600, 2, 1 << 8)  # the guest clears PWRBTN_STS: the line drops
    assert pm.read(0, 2) == 0 and lines == [(9, 1), (9, 0)]
    pm.press_power_button()
    port_access(pm, 0x604, 2, 0)  # SCI_EN cleared: no SCI while the event stays pending
    assert lines == [(9, 1), (9, 0), (9, 1), (9, 0)] and pm.read(0, 2) == 1 << 8
