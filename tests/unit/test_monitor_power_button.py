"""The monitor's `system_wakeup` and `system_powerdown` (vmm.debug.console) against a power button
that records what it was asked: QEMU's answers where the machine is awake or has no button."""

from __future__ import annotations

from vmm.debug.console import MonitorConsole


class Button:
    def __init__(self, asleep: bool) -> None:
        self.asleep = asleep
        self.presses = 0

    def press_power_button(self) -> None:
        self.presses += 1

    def wake_up(self) -> bool:
        if not self.asleep:
            return False
        self.press_power_button()
        return True


def console(button: Button | None) -> MonitorConsole:
    return MonitorConsole([], None, lambda: None, power_button=button)


def test_system_wakeup_wakes_only_a_sleeping_machine() -> None:
    awake, asleep = Button(asleep=False), Button(asleep=True)
    assert console(awake).execute("system_wakeup") == "Unable to wake up: guest is not in suspended state\n"
    assert awake.presses == 0
    assert console(asleep).execute("system_wakeup") == "" and asleep.presses == 1


def test_system_powerdown_presses_the_button_and_no_button_is_one_line() -> None:
    b = Button(asleep=False)
    assert console(b).execute("system_powerdown") == "" and b.presses == 1
    assert console(None).execute("system_wakeup") == "this machine has no power button (-machine pc has one)\n"
    assert "system_wakeup" in console(None).execute("help")
