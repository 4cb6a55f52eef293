"""ACPI power-management registers at QEMU's PIIX4 addresses (vmm.layout PM_*): PM1a status and
enable, PM1a control, and the PM timer.

- PM1a_STS (0x600): event bits, each cleared by writing 1 to it (WAK_STS 15, RTC_STS 10,
  PWRBTN_STS 8: set by `press_power_button`, ...).
- PM1a_EN (0x602): which events raise an SCI; read and written as a plain register. The SCI (ISA
  IRQ 9, the FADT's SCI_INT) is a level: high while SCI_EN is set and an enabled event's status
  bit is (PWRBTN_STS with PWRBTN_EN, RTC_STS with RTC_EN), as on QEMU's PIIX4.
- PM1a_CNT (0x604): SCI_EN (bit 0) is set from the start, as there is no SMI command port to turn
  ACPI mode on; a write with SLP_EN (bit 13) enters the sleep state SLP_TYP (bits 12:10) names:
  \\_S5_'s value powers the machine off (the run ends with status 0, as QEMU exits); \\_S3_'s value
  suspends to RAM through the board's `on_s3` (vmm.board.sleep; without one, the run ends with the
  sleep status); other values are ignored, as on QEMU's PIIX4.
- PM_TMR (0x608): a free-running 24-bit counter at 3.579545 MHz from the host's monotonic clock.

A snapshot keeps the registers and the counter's value with the host's wall-clock time. Restored,
the counter goes on from that value plus the time the machine spent saved: the guest's TSC, which
the project's hosts do not let a monitor move (KVM accepts the IA32_TSC write and the TSC offset
attribute and changes nothing), runs on through that time too, and a kernel that calibrates one
against the other must see both clocks agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from vmm import layout as L
from vmm.devices.protocol import Region
from vmm.errors import ExitStatus
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import PortAccess

PM_TIMER_HZ = 3_579_545
TIMER_MASK = 0xFFFFFF  # 24 bits: the FADT leaves TMR_VAL_EXT clear
SCI_EN = 1 << 0
SLP_TYP_SHIFT, SLP_TYP_MASK = 10, 7 << 10
SLP_EN = 1 << 13
WAK_STS, RTC_STS, PWRBTN_STS = 1 << 15, 1 << 10, 1 << 8  # PM1a_STS
RTC_EN, PWRBTN_EN = 1 << 10, 1 << 8  # PM1a_EN
SCI_IRQ = L.SCI_IRQ
STS_OFF, EN_OFF, CNT_OFF, TMR_OFF = 0, 2, 4, 8
SIZE = TMR_OFF + L.PM_TMR_LEN
POWER_OFF_REASON = "guest powered off (ACPI S5 through PM1a_CNT)"
S3_REASON = "guest asked to suspend to RAM (ACPI S3), and this machine has no way to resume it"


class AcpiPm:
    name = "piix4-pm"

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = time.time_ns,
        irq_line: Callable[[int, int], None] | None = None,
    ) -> None:
        self.clock = clock
        self.wall = wall  # ns; monotonic time means nothing in another process or after a reboot
        self.irq_line = irq_line  # the SCI's line (ISA IRQ, level); None: no SCI
        self._sci = 0
        self.on_s3: Callable[[], Verdict] | None = None  # the board's suspend (vmm.board.sleep)
        self.origin = clock()
        self.status = 0
        self.enable = 0
        self.control = SCI_EN

    def press_power_button(self) -> None:
        """The power button on a running machine: PWRBTN_STS and the SCI, if the guest enabled
        the event (PWRBTN_EN), as QEMU's system_powerdown. (Waking a suspended machine is the
        board's sleep code, which sets PWRBTN_STS whatever PM1a_EN says.)"""
        if self.enable & PWRBTN_EN:
            self.status |= PWRBTN_STS
        self.update_sci()

    def _sci_level(self) -> int:
        return 1 if self.control & SCI_EN and self.status & self.enable & (PWRBTN_STS | RTC_STS) else 0

    def update_sci(self) -> None:
        """Drive the SCI line to its level; call after any change to status, enable or SCI_EN."""
        level = self._sci_level()
        if level != self._sci and self.irq_line is not None:
            self._sci = level
            self.irq_line(SCI_IRQ, level)

    def timer(self) -> int:
        return int((self.clock() - self.origin) * PM_TIMER_HZ) & TIMER_MASK

    def save_state(self) -> dict[str, Any]:
        return {"status": self.status, "enable": self.enable, "control": self.control, "timer": self.timer(),
                "wall_ns": self.wall()}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self.status, self.enable, self.control = state["status"], state["enable"], state["control"]
        self._sci = self._sci_level()  # the line's level itself comes back with the irqchip's state
        saved_for = max(0, self.wall() - int(state["wall_ns"])) / 1e9  # a clock stepped back: no time
        self.origin = self.clock() - (int(state["timer"]) / PM_TIMER_HZ + saved_for)

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
        self.update_sci()
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
