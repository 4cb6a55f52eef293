"""Host side of the `spp-stores` guest: feeds batches of store ops through its mailbox.

The guest announces its mailbox with SYNC(0, address); after each batch it sends SYNC(1). The
driver writes the next batch at each sync, or an empty one to let the guest finish.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmm.cpu.modes import CpuMode
from vmm.devices.ucall import SYNC, Ucall
from vmm.machine import Machine, RunResult

IMAGE = Path(__file__).resolve().parent.parent / "guests" / "build" / "spp-stores.bin"
TARGET = 0x300000  # the guest keeps everything of its own out of 0x200000-0x3fffff

(
    STORE8,
    STORE16,
    STORE32,
    STORE64,
    REP_STOSB,
    REP_MOVSB,
    XCHG64,
    LOCK_CMPXCHG64,
    PUSH64,
    MOVDQU,
    MOVQ_XMM,
    MOVSS,
    MOVSD,
    MOVHPS,
    MOVLPS,
    FSTP,
    FISTP,
    CMPXCHG16B,
    FXSAVE,
    STMXCSR,
    SGDT,
    SIDT,
    MOVD_XMM,
    STORE8_LOOP,
    READ64,
    EXEC_PAGE_STORE,
    LOAD_SEGMENT_FROM_GDT_AT,
) = range(1, 28)
LOCK_ADD32_LOOP = 33  # `count` times lock addl value, (addr)
FAR_CALL_FAULT_NO_IDT = 37

OP = struct.Struct("<IIQQQ")
RESULT_OFFSET = 8  # the guest's `result`: 0 when every op ran, i + 1 when op i was refused
OPS_OFFSET = 16
SRC_OFFSET = 8192  # the mailbox's source buffer starts at its third page


@dataclass
class Op:
    op: int
    addr: int
    value: int = 0
    value2: int = 0
    count: int = 0


class StoreDriver:
    def __init__(
        self, machine: Machine, cpl: int, batches: list[list[Op]], between: Callable[[int], None] | None = None
    ) -> None:
        self.m = machine
        self.cpl = cpl
        self.batches = list(batches)
        self.between = between  # called with the batch index before each batch is handed over
        self.mailbox = 0
        self.done = 0
        machine.ucall.on(SYNC, self._sync)

    def refused(self) -> int:
        """The guest's verdict on the last batch: 0, or 1 + the index of the op it refused."""
        return self.m.memory.read_u32(self.mailbox + RESULT_OFFSET)

    def value2(self, i: int) -> int:
        """What op i of the last batch wrote back into its value2 (READ64, XCHG64, cmpxchg)."""
        return self.m.memory.read_u64(self.mailbox + OPS_OFFSET + i * OP.size + 24)

    def set_source(self, data: bytes) -> None:
        """Bytes REP_MOVSB copies from."""
        self.m.memory.write(self.mailbox + SRC_OFFSET, data)

    def _sync(self, call: Ucall) -> None:
        stage = call.args[0]
        if stage == 0:
            self.mailbox = call.args[1]
            self.m.memory.write_u32(self.mailbox + 4, self.cpl)
        else:
            self.done += 1
        index = self.done
        if self.between is not None:
            self.between(index)
        batch = self.batches[index] if index < len(self.batches) else []
        for i, op in enumerate(batch):
            self.m.memory.write(
                self.mailbox + OPS_OFFSET + i * OP.size, OP.pack(op.op, op.count, op.addr, op.value, op.value2)
            )
        self.m.memory.write_u32(self.mailbox, len(batch))


def stores_machine(mem: int = 16 << 20) -> Machine:
    m = Machine(mem, console=io.BytesIO())
    m.load_flat(IMAGE.read_bytes(), CpuMode.LONG)
    return m


def run_ops(m: Machine, cpl: int, *batches: list[Op], timeout: float = 20) -> RunResult:
    StoreDriver(m, cpl, list(batches))
    return m.run(timeout=timeout)
