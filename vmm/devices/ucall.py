"""Structured guest-to-host calls: the guest OUTs the guest-physical address of a `struct ucall`.

Layout (64 bytes, little-endian):
    u32 magic ('UCAL'), u32 cmd, u64 args[4], u64 file, u64 msg, u32 line, i32 result
Every pointer in it is checked against guest RAM before it is read; a bad call is reported and
ignored (or stops the run under --strict), it never reaches a handler half-checked.
"""

from __future__ import annotations

import errno
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from vmm.devices.console import Console
from vmm.errors import ExitStatus, GuestMemoryError
from vmm.kvm.exits import IoExit
from vmm.verdict import Stop, Verdict

if TYPE_CHECKING:
    from vmm.board.memory import GuestMemory

MAGIC = 0x4C414355
LAYOUT = struct.Struct("<II4QQQIi")
SIZE = LAYOUT.size
RESULT_OFFSET = 60
ARGS_OFFSET = 8

SYNC, DONE, ASSERT_FAIL, PRINT = 1, 2, 3, 4
SPP_PROTECT, SPP_RELEASE, SPP_QUERY = 16, 17, 18
NAMES = {
    SYNC: "SYNC",
    DONE: "DONE",
    ASSERT_FAIL: "ASSERT_FAIL",
    PRINT: "PRINT",
    SPP_PROTECT: "SPP_PROTECT",
    SPP_RELEASE: "SPP_RELEASE",
    SPP_QUERY: "SPP_QUERY",
}


@dataclass
class Ucall:
    """One decoded call. `result` and `args` are written back to the guest after the handler."""

    gpa: int
    cmd: int
    args: list[int]
    file_ptr: int
    msg_ptr: int
    line: int
    vcpu: int
    result: int = 0

    @property
    def name(self) -> str:
        return NAMES.get(self.cmd, f"cmd {self.cmd}")


UcallHandler = Callable[[Ucall], Verdict]


class UcallPort:
    def __init__(self, memory: GuestMemory, console: Console, strict: bool = False, log: TextIO = sys.stderr) -> None:
        self.memory = memory
        self.console = console
        self.strict = strict
        self.log = log
        self.handlers: dict[int, UcallHandler] = {
            SYNC: lambda u: None,
            DONE: lambda u: Stop(ExitStatus.OK, "guest signalled DONE"),
            ASSERT_FAIL: self._assert_fail,
            PRINT: self._print,
        }
        self.syncs: list[tuple[int, int]] = []  # (stage, value) of every SYNC, in order

    def on(self, cmd: int, handler: UcallHandler) -> None:
        self.handlers[cmd] = handler

    def string(self, ptr: int) -> str:
        return "" if ptr == 0 else self.memory.read_cstring(ptr)

    def handle_io(self, ex: IoExit) -> Verdict:
        if not ex.is_write:
            ex.value = 0xFFFFFFFF
            return None
        gpa = ex.value
        try:
            magic, cmd, a0, a1, a2, a3, file_ptr, msg_ptr, line, _ = LAYOUT.unpack(self.memory.read(gpa, SIZE))
            if magic != MAGIC:
                raise GuestMemoryError(f"ucall at {gpa:#x} has bad magic {magic:#x}")
            call = Ucall(gpa, cmd, [a0, a1, a2, a3], file_ptr, msg_ptr, line, ex.vcpu.index)
            if cmd == SYNC:
                self.syncs.append((a0, a1))
            handler = self.handlers.get(cmd)
            if handler is None:
                call.result = -errno.ENOSYS
                verdict = None
            else:
                verdict = handler(call)
            buf = self.memory.view(gpa, SIZE)
            struct.pack_into("<4Q", buf, ARGS_OFFSET, *(a & 0xFFFFFFFFFFFFFFFF for a in call.args))
            struct.pack_into("<i", buf, RESULT_OFFSET, call.result)
            return verdict
        except GuestMemoryError as e:
            if self.memory.contains(gpa, SIZE):  # the struct itself is readable: tell the guest
                struct.pack_into("<i", self.memory.view(gpa, SIZE), RESULT_OFFSET, -errno.EFAULT)
            return self._reject(gpa, str(e))

    def _reject(self, gpa: int, why: str) -> Verdict:
        self.log.write(f"pyvmm: rejected ucall at {gpa:#x}: {why}\n")
        if self.strict:
            return Stop(ExitStatus.BAD_GUEST_REQUEST, f"bad ucall from guest: {why}", fatal=True)
        return None

    def _print(self, call: Ucall) -> Verdict:
        self.console.write(self.string(call.msg_ptr).encode() + b"\n")
        return None

    def _assert_fail(self, call: Ucall) -> Verdict:
        where = f"{self.string(call.file_ptr) or '?'}:{call.line}"
        what = self.string(call.msg_ptr)
        wanted, got = call.args[0], call.args[1]
        return Stop(
            ExitStatus.GUEST_ASSERT,
            f"guest assertion failed at {where}: {what} (wanted {wanted:#x}, got {got:#x})",
        )
