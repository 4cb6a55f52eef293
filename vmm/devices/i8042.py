"""The i8042 keyboard controller (ports 0x60 / 0x64) and System Control Port A (port 0x92).

What guests use them for under a VMM is resetting the machine: command 0xFE to the i8042, or bit 0
of port 0x92. pyvmm behaves as QEMU started with `-no-reboot`: a reset ends the run with status 0.

The rest is a small, polled controller that answers the usual probes sensibly (self-tests,
the command byte, the output port, a keyboard that acknowledges its commands) so drivers that
initialise it do not hang. No key is ever pressed and IRQ 1 / IRQ 12 are never raised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from vmm.devices.protocol import Region
from vmm.errors import ExitStatus
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import PortAccess

DATA_PORT = 0x60
COMMAND_PORT = 0x64  # writes: controller command; reads: status
PORT_A = 0x92

# status register
STAT_OBF = 0x01  # output buffer full: a byte waits at the data port
STAT_IBF = 0x02  # input buffer full (never: every write is taken at once)
STAT_SYS = 0x04  # system flag: set once the controller passed its self-test (the BIOS did that)
STAT_CMD = 0x08  # the last write went to the command port
STAT_UNLOCKED = 0x10  # keyboard not inhibited by the key lock
STAT_AUX = 0x20  # the waiting byte came from the mouse port

# command byte ("mode") bits
MODE_KBD_INT = 0x01
MODE_AUX_INT = 0x02
MODE_SYS = 0x04
MODE_KBD_DISABLED = 0x10
MODE_AUX_DISABLED = 0x20
MODE_DEFAULT = MODE_KBD_INT | MODE_AUX_INT | MODE_SYS

# output port bits
OUT_RESET = 0x01  # active low: clearing it resets the CPU
OUT_A20 = 0x02
OUT_DEFAULT = 0xCF  # QEMU's reset value: reset line high, A20 on, unused lines high

# controller commands
CMD_READ_MODE = 0x20
CMD_WRITE_MODE = 0x60
CMD_AUX_DISABLE = 0xA7
CMD_AUX_ENABLE = 0xA8
CMD_AUX_TEST = 0xA9
CMD_SELF_TEST = 0xAA
CMD_KBD_TEST = 0xAB
CMD_KBD_DISABLE = 0xAD
CMD_KBD_ENABLE = 0xAE
CMD_READ_INPUT = 0xC0
CMD_READ_OUTPUT = 0xD0
CMD_WRITE_OUTPUT = 0xD1
CMD_WRITE_KBD_OBUF = 0xD2
CMD_WRITE_AUX_OBUF = 0xD3
CMD_WRITE_AUX = 0xD4
CMD_A20_OFF = 0xDD
CMD_A20_ON = 0xDF
CMD_PULSE_FIRST = 0xF0  # 0xF0-0xFF pulse output lines 0-3 low for each clear bit of the low nibble
CMD_RESET = 0xFE  # the usual form: pulse line 0, the CPU reset

SELF_TEST_OK = 0x55
INTERFACE_OK = 0x00

# keyboard (device) commands and replies
KBD_ACK = 0xFA
KBD_BAT_OK = 0xAA
KBD_ECHO = 0xEE
KBD_SET_LEDS = 0xED
KBD_SCANCODE_SET = 0xF0
KBD_IDENTIFY = 0xF2
KBD_SET_RATE = 0xF3
KBD_RESET = 0xFF
KBD_ID = (0xAB, 0x83)  # an MF2 keyboard
_KBD_TAKES_ARGUMENT = (KBD_SET_LEDS, KBD_SCANCODE_SET, KBD_SET_RATE)

AUX_RESET = 0xFF
AUX_ID = 0x00  # a standard PS/2 mouse

PORT_A_RESET = 0x01  # fast reset: a 0 to 1 transition resets the CPU
PORT_A_A20 = 0x02

I8042_RESET_REASON = "guest reset the machine through the i8042 (-no-reboot)"
PORT_A_RESET_REASON = "guest reset the machine through port 0x92 (-no-reboot)"


class I8042:
    """The controller's registers, its pending-command latch and the output queue."""

    name = "i8042"

    def __init__(self) -> None:
        self.status = STAT_SYS | STAT_UNLOCKED  # as left by a BIOS that ran the self-test
        self.mode = MODE_DEFAULT
        self.outport = OUT_DEFAULT
        self.pending: int | None = None  # controller command waiting for its data byte
        self.kbd_pending: int | None = None  # keyboard command waiting for its argument
        self.queue: deque[tuple[int, bool]] = deque()  # (byte, from the mouse port)
        self.last = 0  # a read of an empty buffer returns the last byte again, as on QEMU
        self.a20 = True

    def save_state(self) -> dict[str, Any]:
        return {"status": self.status, "mode": self.mode, "outport": self.outport, "pending": self.pending,
                "kbd_pending": self.kbd_pending, "queue": [[b, aux] for b, aux in self.queue], "last": self.last,
                "a20": self.a20}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self.status, self.mode, self.outport = state["status"], state["mode"], state["outport"]
        self.pending, self.kbd_pending, self.last = state["pending"], state["kbd_pending"], state["last"]
        self.queue = deque((int(b), bool(aux)) for b, aux in state["queue"])
        self.a20 = state["a20"]

    # --- output buffer ------------------------------------------------------------------------
    def _push(self, *data: int, aux: bool = False) -> None:
        self.queue.extend((b & 0xFF, aux) for b in data)

    def read_status(self) -> int:
        s = self.status & ~(STAT_OBF | STAT_AUX)
        if self.queue:
            s |= STAT_OBF | (STAT_AUX if self.queue[0][1] else 0)
        return s

    def read_data(self) -> int:
        if self.queue:
            self.last = self.queue.popleft()[0]
        return self.last

    # --- commands --------------------------------------------------------------------------
    def write_command(self, cmd: int) -> Verdict:
        cmd &= 0xFF
        self.status |= STAT_CMD
        self.pending = None
        if cmd >= CMD_PULSE_FIRST:
            # bit 0 clear pulses the reset line; the other lines are not wired to anything
            return Stop(ExitStatus.OK, I8042_RESET_REASON) if not cmd & 1 else None
        if cmd == CMD_READ_MODE:
            self._push(self.mode)
        elif cmd in (CMD_WRITE_MODE, CMD_WRITE_OUTPUT, CMD_WRITE_KBD_OBUF, CMD_WRITE_AUX_OBUF, CMD_WRITE_AUX):
            self.pending = cmd
        elif cmd == CMD_AUX_DISABLE:
            self.mode |= MODE_AUX_DISABLED
        elif cmd == CMD_AUX_ENABLE:
            self.mode &= ~MODE_AUX_DISABLED
        elif cmd == CMD_KBD_DISABLE:
            self.mode |= MODE_KBD_DISABLED
        elif cmd == CMD_KBD_ENABLE:
            self.mode &= ~MODE_KBD_DISABLED
        elif cmd == CMD_SELF_TEST:
            self.status |= STAT_SYS
            self._push(SELF_TEST_OK)
        elif cmd in (CMD_KBD_TEST, CMD_AUX_TEST):
            self._push(INTERFACE_OK)
        elif cmd == CMD_READ_INPUT:
            self._push(0x80)  # keyboard not inhibited
        elif cmd == CMD_READ_OUTPUT:
            self._push(self.outport)
        elif cmd == CMD_A20_OFF:
            self._set_a20(False)
        elif cmd == CMD_A20_ON:
            self._set_a20(True)
        # anything else is a command this controller does not implement: ignored
        return None

    def write_data(self, value: int) -> Verdict:
        value &= 0xFF
        self.status &= ~STAT_CMD
        cmd, self.pending = self.pending, None
        if cmd is None:
            self._keyboard(value)
        elif cmd == CMD_WRITE_MODE:
            self.mode = value
            # the command byte's system flag is the status register's
            self.status = (self.status & ~STAT_SYS) | (value & MODE_SYS)
        elif cmd == CMD_WRITE_OUTPUT:
            self.outport = value
            self._set_a20(bool(value & OUT_A20))
            if not value & OUT_RESET:
                return Stop(ExitStatus.OK, I8042_RESET_REASON)
        elif cmd == CMD_WRITE_KBD_OBUF:
            self._push(value)
        elif cmd == CMD_WRITE_AUX_OBUF:
            self._push(value, aux=True)
        elif cmd == CMD_WRITE_AUX:
            self._mouse(value)
        return None

    def _set_a20(self, on: bool) -> None:
        # KVM has no A20 gate: memory is never wrapped at 1 MiB; the state is only reported back
        self.a20 = on
        self.outport = (self.outport | OUT_A20) if on else (self.outport & ~OUT_A20)

    def _keyboard(self, byte: int) -> None:
        if self.kbd_pending is not None:
            self.kbd_pending = None
            self._push(KBD_ACK)  # the argument of a two-byte command
        elif byte == KBD_ECHO:
            self._push(KBD_ECHO)
        elif byte == KBD_RESET:
            self._push(KBD_ACK, KBD_BAT_OK)
        elif byte == KBD_IDENTIFY:
            self._push(KBD_ACK, *KBD_ID)
        else:
            if byte in _KBD_TAKES_ARGUMENT:
                self.kbd_pending = byte
            self._push(KBD_ACK)

    def _mouse(self, byte: int) -> None:
        if byte == AUX_RESET:
            self._push(KBD_ACK, KBD_BAT_OK, AUX_ID, aux=True)
        else:
            self._push(KBD_ACK, aux=True)

    # --- I/O plumbing -------------------------------------------------------------------------
    def handle_io(self, ex: PortAccess) -> Verdict:
        if ex.offset == COMMAND_PORT - DATA_PORT:
            if ex.is_write:
                return self.write_command(ex.value)
            ex.value = self.read_status()
        elif ex.is_write:
            return self.write_data(ex.value)
        else:
            ex.value = self.read_data()
        return None

    def regions(self) -> Sequence[Region]:
        # two one-port windows of one device: offsets count from the data port
        return (
            Region("io", DATA_PORT, 1, self.handle_io),
            Region("io", COMMAND_PORT, 1, self.handle_io, base=DATA_PORT),
        )


class PortA:
    """System Control Port A: bit 0 is a fast CPU reset, bit 1 the fast A20 gate."""

    name = "port92"

    def __init__(self) -> None:
        self.value = 0  # QEMU's reset value

    def save_state(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state(self, state: dict[str, Any]) -> None:
        self.value = state["value"]

    def write(self, value: int) -> Verdict:
        old, self.value = self.value, value & 0xFF
        if value & PORT_A_RESET and not old & PORT_A_RESET:
            return Stop(ExitStatus.OK, PORT_A_RESET_REASON)
        return None

    def read(self) -> int:
        return self.value

    def handle_io(self, ex: PortAccess) -> Verdict:
        if ex.is_write:
            return self.write(ex.value)
        ex.value = self.read()
        return None

    def regions(self) -> Sequence[Region]:
        return (Region("io", PORT_A, 1, self.handle_io),)
