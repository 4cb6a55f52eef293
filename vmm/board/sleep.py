"""ACPI S3, suspend to RAM: what QEMU with SeaBIOS does between a guest's SLP_TYP(S3) | SLP_EN
write and its waking vector.

The VM stops running until the RTC alarm the guest armed is due: the vCPU that wrote SLP_EN waits
in its thread, every other vCPU is parked outside KVM_RUN. RAM is kept as it was; PM1a_STS then
reads WAK_STS and RTC_STS, the RTC's status C reads AF | IRQF. Waking resets the processors, as
on real hardware and in QEMU: the boot vCPU (vCPU 0, whichever vCPU suspended) starts in real
mode at the FACS firmware waking vector (CS = vector >> 4, IP = vector & 0xf), as SeaBIOS's resume
path enters it, and every other vCPU is back in its reset state waiting for a start-up IPI
(KVM_MP_STATE_INIT_RECEIVED): the guest restarts them with INIT, SIPI, SIPI as at boot.

Two things wake the machine: the RTC alarm, when the guest armed it and set RTC_EN (PM1a_STS then
reads WAK_STS | RTC_STS), and the power button, `press_power_button()` (the CLI presses it on
SIGUSR2), at any time (WAK_STS | PWRBTN_STS, as QEMU reports its `system_wakeup`). With no alarm
the machine sleeps until the button is pressed. A suspend with no waking vector ends the run with
the sleep status. A stop asked for while asleep (--timeout, Ctrl-C) ends the wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from kvm_abi import constants
from vmm.cpu.boot import apply_boot_state
from vmm.cpu.modes import BootState, CpuMode, Segment, boot_state
from vmm.devices.acpi_pm import PWRBTN_STS, RTC_EN, RTC_STS, WAK_STS, AcpiPm
from vmm.devices.cmos import Cmos
from vmm.errors import ExitStatus
from vmm.kvm.vcpu import Vcpu
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from vmm.cpu.boot import WritableRam

FACS_WAKING_VECTOR = 12  # offset of the 32-bit firmware waking vector in the FACS
WAIT_SLICE = 0.05  # seconds between looks for a stop while asleep
# Where a reset AP would start if it ran: it does not, it waits for a start-up IPI, whose vector
# sets CS and IP (the rest of the state, real mode, is what this leaves)
RESET_VECTOR = 0xFFFF0


def resume_state(vector: int) -> BootState:
    """Real mode at `vector` the way a BIOS's resume path jumps there: CS = vector >> 4."""
    state = boot_state(CpuMode.REAL, vector, 0)
    cs = Segment(vector >> 4, base=(vector >> 4) << 4, limit=0xFFFF, type=0xB)
    return BootState(
        state.mode, vector & 0xF, 0, state.rflags, {**state.segments, "cs": cs}, state.gdt, state.idt,
        state.cr0, 0, 0, 0, [],
    )  # fmt: skip


class Suspend:
    def __init__(
        self,
        vcpus: list[Vcpu],
        memory: WritableRam,
        read_u32: Callable[[int], int],
        pm: AcpiPm,
        cmos: Cmos,
        facs: int,
        log: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vcpus, self.memory, self.read_u32 = vcpus, memory, read_u32
        self.pm, self.cmos, self.facs, self.log, self.sleep = pm, cmos, facs, log, sleep
        # set by whoever runs the vCPUs: a stop (timeout, Ctrl-C) ends the wait early; the other
        # vCPUs stay out of KVM_RUN while the body of pause_others() runs
        self.should_stop: Callable[[], bool] = lambda: False
        self.pause_others: Callable[[], AbstractContextManager[None]] = nullcontext
        self._button = threading.Event()  # pressed while asleep
        self.asleep = False

    def press_power_button(self) -> None:
        """The power button, from any thread: wakes a sleeping machine; on a running one the
        guest sees PWRBTN_STS."""
        self.pm.press_power_button()
        self._button.set()

    def wake_up(self) -> bool:
        """QEMU's `system_wakeup`: a power-button wake of a sleeping machine; False if it is awake."""
        if not self.asleep:
            return False
        self.press_power_button()
        return True

    def __call__(self) -> Verdict:
        delay = self.cmos.alarm_delay() if self.pm.enable & RTC_EN else None
        vector = self.read_u32(self.facs + FACS_WAKING_VECTOR)
        if vector == 0 or vector >= 0x100000:
            return Stop(ExitStatus.SLEEP_NOT_IMPLEMENTED, f"guest suspended to RAM (ACPI S3) with FACS waking "
                        f"vector {vector:#x}, which real mode cannot reach")  # fmt: skip
        self._button.clear()  # a press before the guest slept does not wake it
        if delay is None:
            self.log("guest suspended to RAM (ACPI S3) with no RTC alarm armed and enabled: the power button "
                     "(SIGUSR2) wakes it")  # fmt: skip
        else:
            self.log(f"guest suspended to RAM (ACPI S3); the RTC alarm wakes it in {delay:.1f} s")
        with self.pause_others():
            deadline = time.monotonic() + delay if delay is not None else float("inf")
            self.asleep = True
            try:
                while (left := deadline - time.monotonic()) > 0 and not self._button.is_set():
                    if self.should_stop():
                        return None  # the pending stop ends the run at this exit
                    self.sleep(min(left, WAIT_SLICE))
            finally:
                self.asleep = False
            if self._button.is_set():
                self.pm.status |= WAK_STS | PWRBTN_STS
            else:
                self.cmos.raise_alarm()
                self.pm.status |= WAK_STS | RTC_STS
            self.pm.update_sci()
            for vcpu in self.vcpus:
                if vcpu.index == 0:
                    self._start(vcpu, resume_state(vector))
                else:  # an AP: reset, waiting for INIT/SIPI
                    self._start(vcpu, resume_state(RESET_VECTOR))
                    vcpu.set_mp_state(constants.KVM_MP_STATE_INIT_RECEIVED)
        return None

    def _start(self, vcpu: Vcpu, state: BootState) -> None:
        apply_boot_state(vcpu, self.memory, state)
        regs = vcpu.get_regs()
        for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp"):
            setattr(regs, name, 0)
        vcpu.set_regs(regs)
