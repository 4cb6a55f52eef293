"""ACPI power-management registers at QEMU's PIIX4 addresses (vmm.layout PM_*): PM1a status and
enable, PM1a control, and the PM timer.

- PM1a_STS (0x600): event bits, each cleared by writing 1 to it (WAK_STS 15, RTC_STS 10,
  PWRBTN_STS 8: set by `press_power_button`, ...).
- PM1a_EN (0x602): which events raise an SCI; read and written as a plain register.
- PM1a_CNT (0x604): SCI_EN (bit 0) is set from the start, as there is no SMI command port to turn
  ACPI mode on; a write with SLP_EN (bit 13) enters the sleep state SLP_TYP (bits 12:10) names:
  \\_S5_'s value powers the machine off (the run ends with status 0, as QEMU exits); \\_S3_'s value
  suspends to RAM through the board's `on_s3` (vmm.board.sleep; without one, the run ends with the
  sleep status); other values are ignored, as on QEMU's PIIX4.
- PM_TMR (0x608): a free-running 24-bit counter at 3.579545 MHz from the host's monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from vmm import layout as L
from vmm.devices.protocol import PortAccess, Region
from vmm.errors import ExitStatus
from vmm.verdict import Stop, Verdict

PM_TIMER_HZ = 3_579_545
TIMER_MASK = 0xFFFFFF  # 24 bits: the FADT leaves TMR_VAL_EXT clear
SCI_EN = 1 << 0
SLP_TYP_SHIFT, SLP_TYP_MASK = 10, 7 << 10
SLP_EN = 1 << 13
WAK_STS, RTC_STS, PWRBTN_STS = 1 << 15, 1 << 10, 1 << 8  # PM1a_STS
RTC_EN = 1 << 10  # PM1a_EN
STS_OFF, EN_OFF, CNT_OFF, TMR_OFF = 0, 2, 4, 8
SIZE = TMR_OFF + L.PM_TMR_LEN
POWER_OFF_REASON = "guest powered off (ACPI S5 through PM1a_CNT)"
S3_REASON = "guest asked to suspend to RAM (ACPI S3), and this machine has no way to resume it"


class AcpiPm:
    name = "piix4-pm"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.on_s3: Callable[[], Verdict] | None = None  # the board's suspend (vmm.board.sleep)
        self.origin = clock()
        self.status = 0
        self.enable = 0
        self.control = SCI_EN

    def press_power_button(self) -> None:
        """The power button's status bit (the board's sleep code also wakes a suspended machine)."""
        self.status |= PWRBTN_STS

    def timer(self) -> int:
        return int((self.clock() - self.origin) * PM_TIMER_HZ) & TIMER_MASK

    def registers(self) -> bytes:
        return (
            self.status.to_bytes(2, "little") + self.enable.to_bytes(2, "little")
            + (self.control & ~SLP_EN).to_bytes(2, "little") + bytes(2) + self.timer().to_bytes(4, "little")
        )  # fmt: skip

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.registers()[offset : offset + size].ljust(size, b"\0"), "little")

    def write(self, offset: int, size: int, value: int) -> Verdict:
        verdict: Verdict = None
        for reg in (STS_OFF, EN_OFF, CNT_OFF):
            lo, hi = max(offset, reg), min(offset + size, reg + 2)
            if lo >= hi:
                continue
            part = (value >> (8 * (lo - offset))) & ((1 << (8 * (hi - lo))) - 1)
            shift = 8 * (lo - reg)
            mask = ((1 << (8 * (hi - lo))) - 1) << shift
            bits = part << shift
            if reg == STS_OFF:
                self.status &= ~bits  # write 1 to clear
            elif reg == EN_OFF:
                self.enable = (self.enable & ~mask) | bits
            else:
                self.control = (self.control & ~mask) | bits
                verdict = verdict or self.sleep_request()
        return verdict

    def sleep_request(self) -> Verdict:
        if not self.control & SLP_EN:
            return None
        self.control &= ~SLP_EN
        slp_typ = (self.control & SLP_TYP_MASK) >> SLP_TYP_SHIFT
        if slp_typ == L.SLP_TYP_S5:
            return Stop(ExitStatus.OK, POWER_OFF_REASON)
        if slp_typ == L.SLP_TYP_S3:
            return self.on_s3() if self.on_s3 is not None else Stop(ExitStatus.SLEEP_NOT_IMPLEMENTED, S3_REASON)
        return None

    def handle_io(self, ex: PortAccess) -> Verdict:
        if ex.is_write:
            return self.write(ex.offset, ex.size, ex.value)
        ex.value = self.read(ex.offset, ex.size)
        return None

    def regions(self) -> Sequence[Region]:
        return (Region("io", L.PM_BASE, SIZE, self.handle_io),)
