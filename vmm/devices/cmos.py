"""The MC146818 real-time clock and its CMOS RAM, at ports 0x70 (index) / 0x71 (data).

The clock runs from the host's clock (UTC, QEMU's default `-rtc base=utc`) plus an offset the guest
can change by writing the time registers. The RAM holds what a BIOS, or QEMU's `pc_cmos_init`,
stores there for the OS: memory sizes and the CPU count; other bytes read back what was written.

The alarm registers (1, 3, 5) and AIE hold what the guest writes; an alarm wakes a machine suspended
to RAM (`alarm_delay`, `raise_alarm`: status C then reads AF | IRQF once). Not modelled: the
periodic, alarm and update-ended interrupts on IRQ 8 while the guest runs, and the update cycle:
the update-in-progress bit of status A is never set, so a guest that waits for it to clear goes
straight on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from vmm.devices.protocol import Region

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import PortAccess

INDEX_PORT = 0x70
DATA_PORT = 0x71
NMI_DISABLE = 0x80  # bit 7 of an index write masks NMIs on a PC; the index itself is 7 bits

# clock registers
SECONDS, SECONDS_ALARM, MINUTES, MINUTES_ALARM, HOURS, HOURS_ALARM = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR = 0x06, 0x07, 0x08, 0x09
STATUS_A, STATUS_B, STATUS_C, STATUS_D = 0x0A, 0x0B, 0x0C, 0x0D
CENTURY = 0x32  # where QEMU (and the ACPI FADT's default) keeps the century

# status bits
A_UIP = 0x80
B_SET = 0x80  # the guest is setting the clock: it stops counting until the bit is cleared
B_AIE = 0x20  # alarm interrupt enable
C_IRQF, C_AF = 0x80, 0x20  # an enabled flag is set; the alarm flag
ALARM_DONT_CARE = 0xC0  # an alarm byte of 0xc0-0xff matches every value
B_DM_BINARY = 0x04  # data mode: binary when set, BCD when clear
B_24H = 0x02
D_VRT = 0x80  # valid RAM and time: the battery is good

STATUS_A_DEFAULT = 0x26  # 32.768 kHz time base, 1024 Hz periodic rate (QEMU's reset value)
STATUS_B_DEFAULT = B_24H  # 24-hour, BCD
HOUR_PM = 0x80  # 12-hour mode: the hour's bit 7 marks PM

# CMOS RAM bytes a BIOS fills
BASE_MEM_LO, BASE_MEM_HI = 0x15, 0x16  # KiB below 1 MiB (at most 640)
EXT_MEM_LO, EXT_MEM_HI = 0x17, 0x18  # KiB above 1 MiB, capped at 0xFFFF (so "64 MiB")
EXT_MEM2_LO, EXT_MEM2_HI = 0x30, 0x31  # the same value again, where later BIOSes look
HIGH_MEM_LO, HIGH_MEM_HI = 0x34, 0x35  # 64 KiB units between 16 MiB and 4 GiB, capped at 0xFFFF
ABOVE_4G = 0x5B  # three bytes, 0x5b-0x5d: 64 KiB units above 4 GiB
CPU_COUNT = 0x5F  # number of CPUs minus one
EQUIPMENT = 0x14
EQUIPMENT_DEFAULT = 0x06  # FPU present, PS/2 mouse present, no floppy (QEMU with no floppy)

KIB, MIB = 1 << 10, 1 << 20

_TIME_REGS = (SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY)


def memory_bytes(below_4g: int, above_4g: int = 0) -> dict[int, int]:
    """The CMOS bytes describing RAM, computed as QEMU's pc_cmos_init does."""
    base = min(below_4g // KIB, 640)
    ext = min(max(below_4g - MIB, 0) // KIB, 0xFFFF)
    high = min(max(below_4g - 16 * MIB, 0) // (64 * KIB), 0xFFFF)
    above = above_4g // (64 * KIB)
    return {
        BASE_MEM_LO: base & 0xFF,
        BASE_MEM_HI: base >> 8,
        EXT_MEM_LO: ext & 0xFF,
        EXT_MEM_HI: ext >> 8,
        EXT_MEM2_LO: ext & 0xFF,
        EXT_MEM2_HI: ext >> 8,
        HIGH_MEM_LO: high & 0xFF,
        HIGH_MEM_HI: high >> 8,
        ABOVE_4G: above & 0xFF,
        ABOVE_4G + 1: (above >> 8) & 0xFF,
        ABOVE_4G + 2: (above >> 16) & 0xFF,
    }


def to_bcd(v: int) -> int:
    return (v // 10) << 4 | v % 10


def from_bcd(v: int) -> int:
    return (v >> 4) * 10 + (v & 0x0F)


class Cmos:
    """The 128-byte register file, the index latch and the clock."""

    name = "mc146818rtc"

    def __init__(
        self,
        *,
        ram_below_4g: int,
        ram_above_4g: int = 0,
        ncpus: int = 1,
        clock: Callable[[], float] = time.time,
        localtime: bool = False,
    ) -> None:
        if not 1 <= ncpus <= 256:
            raise ValueError(f"CPU count {ncpus} does not fit the CMOS byte")
        self.clock = clock
        self.ram = bytearray(128)
        self.index = 0
        self.nmi_masked = False
        self.flags = 0  # status C
        # guest time minus host time, in seconds: -rtc base=localtime starts at the host's zone offset
        self.offset = float(time.localtime(clock()).tm_gmtoff) if localtime else 0.0
        # while status B's SET bit is on, the clock stands still at these fields (binary values)
        self._frozen: dict[int, int] | None = None
        self.ram[STATUS_A] = STATUS_A_DEFAULT
        self.ram[STATUS_B] = STATUS_B_DEFAULT
        self.ram[STATUS_D] = D_VRT
        self.ram[EQUIPMENT] = EQUIPMENT_DEFAULT
        for reg, v in memory_bytes(ram_below_4g, ram_above_4g).items():
            self.ram[reg] = v
        self.ram[CPU_COUNT] = ncpus - 1

    # --- the clock ------------------------------------------------------------------------
    def time_fields(self) -> dict[int, int]:
        """The current guest time as binary register values (hours 0-23, Sunday = 1)."""
        if self._frozen is not None:
            return dict(self._frozen)
        t = time.gmtime(int(self.clock() + self.offset))
        return {
            SECONDS: t.tm_sec,
            MINUTES: t.tm_min,
            HOURS: t.tm_hour,
            DAY_OF_WEEK: (t.tm_wday + 1) % 7 + 1,  # tm_wday counts from Monday = 0
            DAY_OF_MONTH: t.tm_mday,
            MONTH: t.tm_mon,
            YEAR: t.tm_year % 100,
            CENTURY: t.tm_year // 100,
        }

    def _set_time(self, fields: dict[int, int]) -> None:
        """Make the clock show `fields` now; an impossible date leaves the clock as it was."""
        import calendar  # only a guest that sets the clock needs it: keep it off start-up

        year = fields[CENTURY] * 100 + fields[YEAR]
        month = fields[MONTH]
        if year < 1 or not 1 <= month <= 12 or fields[HOURS] > 23 or fields[MINUTES] > 59 or fields[SECONDS] > 59:
            return
        # a guest that sets the fields one by one passes through dates such as 31 February
        day = min(max(fields[DAY_OF_MONTH], 1), calendar.monthrange(year, month)[1])
        target = calendar.timegm((year, month, day, fields[HOURS], fields[MINUTES], fields[SECONDS], 0, 0, 0))
        self.offset = target - int(self.clock())

    def _encode(self, reg: int, v: int) -> int:
        b = self.ram[STATUS_B]
        pm = 0
        if reg == HOURS and not b & B_24H:
            pm = HOUR_PM if v >= 12 else 0
            v = v % 12 or 12
        if not b & B_DM_BINARY:
            v = to_bcd(v)
        return v | pm

    def _decode(self, reg: int, v: int) -> int:
        b = self.ram[STATUS_B]
        pm = False
        if reg == HOURS and not b & B_24H:
            pm = bool(v & HOUR_PM)
            v &= ~HOUR_PM
        if not b & B_DM_BINARY:
            v = from_bcd(v)
        if reg == HOURS and not b & B_24H:
            v = v % 12 + (12 if pm else 0)
        return v

    # --- register access --------------------------------------------------------------------
    def read(self, reg: int) -> int:
        reg &= 0x7F
        if reg in _TIME_REGS:
            return self._encode(reg, self.time_fields()[reg])
        if reg == STATUS_A:
            return self.ram[STATUS_A] & ~A_UIP
        if reg == STATUS_C:
            flags, self.flags = self.flags, 0  # a read clears them
            return flags
        return self.ram[reg]

    def write(self, reg: int, value: int) -> None:
        reg &= 0x7F
        value &= 0xFF
        if reg in _TIME_REGS:
            fields = self.time_fields()
            fields[reg] = self._decode(reg, value)
            if self._frozen is not None:
                self._frozen = fields
            elif reg != DAY_OF_WEEK:  # the weekday follows from the date
                self._set_time(fields)
        elif reg == STATUS_A:
            self.ram[STATUS_A] = value & ~A_UIP
        elif reg == STATUS_B:
            self._write_status_b(value)
        elif reg in (STATUS_C, STATUS_D):
            pass  # read-only
        else:
            self.ram[reg] = value

    def _write_status_b(self, value: int) -> None:
        if value & B_SET and self._frozen is None:
            self._frozen = self.time_fields()
        elif not value & B_SET and self._frozen is not None:
            frozen, self._frozen = self._frozen, None
            self._set_time(frozen)
        self.ram[STATUS_B] = value

    # --- the alarm ---------------------------------------------------------------------------
    def alarm_delay(self) -> float | None:
        """Seconds from now until the alarm registers match the clock, if AIE is set; None if the
        alarm is off or can never match."""
        if not self.ram[STATUS_B] & B_AIE:
            return None
        wanted = []
        for reg in (HOURS_ALARM, MINUTES_ALARM, SECONDS_ALARM):
            raw = self.ram[reg]
            wanted.append(None if raw >= ALARM_DONT_CARE else self._decode(reg - 1, raw))
        now = self.clock() + self.offset
        start = int(now)
        for step in range(1, 86401):
            t = start + step
            h, m, s = (t // 3600) % 24, (t // 60) % 60, t % 60
            if all(w is None or w == v for w, v in zip(wanted, (h, m, s), strict=True)):
                return t - now
        return None

    def raise_alarm(self) -> None:
        self.flags |= C_AF | (C_IRQF if self.ram[STATUS_B] & B_AIE else 0)

    # --- the guest side ---------------------------------------------------------------------
    def write_index(self, value: int) -> None:
        self.index = value & 0x7F
        self.nmi_masked = bool(value & NMI_DISABLE)

    def read_data(self) -> int:
        return self.read(self.index)

    def write_data(self, value: int) -> None:
        self.write(self.index, value)

    # --- snapshots: the clock keeps its offset from the host's clock, as a restored QEMU RTC does
    def save_state(self) -> dict[str, Any]:
        frozen = None if self._frozen is None else sorted(self._frozen.items())
        return {"ram": bytes(self.ram).hex(), "index": self.index, "nmi_masked": self.nmi_masked,
                "offset": self.offset, "frozen": frozen}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self.ram[:] = bytes.fromhex(state["ram"])
        self.index, self.nmi_masked, self.offset = state["index"], state["nmi_masked"], state["offset"]
        frozen = state["frozen"]
        self._frozen = None if frozen is None else {int(k): int(v) for k, v in frozen}

    # --- I/O plumbing -------------------------------------------------------------------------
    def handle_io(self, ex: PortAccess) -> None:
        if ex.offset == 0:  # the index register
            if ex.is_write:
                self.write_index(ex.value & 0xFF)
            else:
                ex.value = 0xFFFFFFFF  # the index register is write-only; QEMU reads it as 0xff
        elif ex.is_write:
            self.write_data(ex.value & 0xFF)
        else:
            ex.value = self.read_data()

    def regions(self) -> Sequence[Region]:
        return (Region("io", INDEX_PORT, 2, self.handle_io),)
