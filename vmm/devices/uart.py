"""A 16550 UART: enough registers for polled drivers. Transmit goes to the console; the receive
side reads from a byte queue the host can fill (`feed`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from vmm.devices.console import Console
from vmm.devices.protocol import Region

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import PortAccess

# register offsets
RBR_THR, IER, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
LCR_DLAB = 0x80
LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40
MSR_CTS, MSR_DSR, MSR_DCD = 0x10, 0x20, 0x80
IIR_NONE, IIR_FIFO = 0x01, 0xC0


class Uart16550:
    name = "isa-serial"

    def __init__(self, console: Console, base: int = 0x3F8) -> None:
        self.console = console
        self.base = base
        self.rx: deque[int] = deque()
        self.ier = self.lcr = self.mcr = self.scr = self.fcr = 0
        self.divisor = 12  # 9600 baud, the usual reset value
        self._writers = (
            self._w_data,
            self._w_ier,
            self._w_fcr,
            self._w_lcr,
            self._w_mcr,
            self._w_readonly,
            self._w_readonly,
            self._w_scr,
        )

    def feed(self, data: bytes) -> None:
        self.rx.extend(data)

    def save_state(self) -> dict[str, Any]:
        return {"ier": self.ier, "lcr": self.lcr, "mcr": self.mcr, "scr": self.scr, "fcr": self.fcr,
                "divisor": self.divisor, "rx": bytes(self.rx).hex()}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self.ier, self.lcr, self.mcr = state["ier"], state["lcr"], state["mcr"]
        self.scr, self.fcr, self.divisor = state["scr"], state["fcr"], state["divisor"]
        self.rx = deque(bytes.fromhex(state["rx"]))

    def regions(self) -> Sequence[Region]:
        # one region per register, each with its own handler: the port bus's lookup then picks
        # the register too, so a port exit costs one call less (see vmm.bench group 0)
        return tuple(Region("io", self.base + reg, 1, self._register(reg), base=self.base) for reg in range(8))

    def _register(self, reg: int) -> Callable[[PortAccess], None]:
        direct = {RBR_THR: self._data_access, LSR: self._lsr_access, SCR: self._scr_access}.get(reg)
        if direct is not None:
            return direct
        write, read = self._writers[reg], self.read

        def access(ex: PortAccess) -> None:
            if ex.is_write:
                write(ex.value & 0xFF)
            else:
                ex.value = read(reg)

        return access

    # The registers a polled driver hammers (transmit, line status) and the one probes write and
    # read back (scratch) take the access themselves: one call per exit, not two.
    def _data_access(self, ex: PortAccess) -> None:
        if ex.is_write and not self.lcr & LCR_DLAB:
            self.console.put(ex.value & 0xFF)
        elif ex.is_write:
            self._w_data(ex.value & 0xFF)
        else:
            ex.value = self.read(RBR_THR)

    def _lsr_access(self, ex: PortAccess) -> None:
        if not ex.is_write:  # LSR ignores writes
            ex.value = LSR_THRE | LSR_TEMT | (LSR_DR if self.rx else 0)

    def _scr_access(self, ex: PortAccess) -> None:
        if ex.is_write:
            self.scr = ex.value & 0xFF
        else:
            ex.value = self.scr

    def handle_io(self, ex: PortAccess) -> None:
        reg = ex.offset
        if ex.is_write:
            self._writers[reg](ex.value & 0xFF)
        else:
            ex.value = self.read(reg)

    def write(self, reg: int, v: int) -> None:
        self._writers[reg](v & 0xFF)

    # one method per register, looked up by offset: the transmit path is a single indexed call
    def _w_data(self, v: int) -> None:
        if self.lcr & LCR_DLAB:
            self.divisor = (self.divisor & 0xFF00) | v
        else:
            self.console.put(v)

    def _w_ier(self, v: int) -> None:
        if self.lcr & LCR_DLAB:
            self.divisor = (self.divisor & 0xFF) | v << 8
        else:
            self.ier = v & 0x0F

    def _w_fcr(self, v: int) -> None:
        self.fcr = v
        if v & 0x02:
            self.rx.clear()

    def _w_lcr(self, v: int) -> None:
        self.lcr = v

    def _w_mcr(self, v: int) -> None:
        self.mcr = v & 0x1F

    def _w_readonly(self, v: int) -> None:
        pass  # LSR and MSR ignore writes

    def _w_scr(self, v: int) -> None:
        self.scr = v

    def read(self, reg: int) -> int:
        dlab = self.lcr & LCR_DLAB
        if reg == RBR_THR:
            if dlab:
                return self.divisor & 0xFF
            return self.rx.popleft() if self.rx else 0
        if reg == IER:
            return self.divisor >> 8 if dlab else self.ier
        if reg == IIR_FCR:
            return IIR_NONE | (IIR_FIFO if self.fcr & 1 else 0)
        if reg == LCR:
            return self.lcr
        if reg == MCR:
            return self.mcr
        if reg == LSR:
            return LSR_THRE | LSR_TEMT | (LSR_DR if self.rx else 0)
        if reg == MSR:
            if self.mcr & 0x10:  # loopback: modem inputs follow the outputs
                m = self.mcr
                return (m & 1) << 5 | (m & 2) << 3 | (m & 4) << 4 | (m & 8) << 4
            return MSR_CTS | MSR_DSR | MSR_DCD
        return self.scr
