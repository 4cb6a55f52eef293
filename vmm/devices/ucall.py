"""Structured guest-to-host calls: the guest OUTs the guest-physical address of a `struct ucall`.

Layout (64 bytes, little-endian):
    u32 magic ('UCAL'), u32 cmd, u64 args[4], u64 file, u64 msg, u32 line, i32 result
Every pointer in it is checked against guest RAM before it is read; a bad call is reported and
ignored (or stops the run under --strict), it never reaches a handler half-checked. Only the
documented access is a call: a 32-bit OUT to the port's first byte. Any other access to the four
ports (a read, an 8- or 16-bit write, a write to 0x1001-0x1003) is no call at all and is declined
(`Unclaimed`): it is an unhandled port access. A struct that is refused as a whole (outside RAM,
bad magic) is not written to; one whose own fields point outside RAM gets `result = -EFAULT`,
since it is a ucall the guest can be answered through. Refusals go through the rate-limited
`GuestNotices`.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Sequence

from vmm.devices.console import Console
from vmm.devices.notices import GuestNotices
from vmm.devices.protocol import Region
from vmm.errors import ExitStatus, GuestMemoryError
from vmm.record import Record
from vmm.verdict import Stop, Unclaimed, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import GuestRam, PortAccess

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


class Ucall(Record):
    """One decoded call. `result` and `args` are written back to the guest after the handler."""

    __slots__ = ("gpa", "cmd", "args", "file_ptr", "msg_ptr", "line", "vcpu", "result")  # noqa: RUF023 (repr order)

    def __init__(
        self, gpa: int, cmd: int, args: list[int], file_ptr: int, msg_ptr: int, line: int, vcpu: int, result: int = 0
    ) -> None:
        self.gpa, self.cmd, self.args, self.result = gpa, cmd, args, result
        self.file_ptr, self.msg_ptr, self.line, self.vcpu = file_ptr, msg_ptr, line, vcpu

    @property
    def name(self) -> str:
        return NAMES.get(self.cmd, f"cmd {self.cmd}")


UcallHandler = Callable[[Ucall], Verdict]


class UcallPort:
    name = "ucall"

    def __init__(
        self, memory: GuestRam, console: Console, notices: GuestNotices, *, strict: bool = False, port: int = 0x1000
    ) -> None:
        self.memory = memory
        self.console = console
        self.strict = strict
        self.notices = notices
        self.port = port
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

    def regions(self) -> Sequence[Region]:
        return (Region("io", self.port, 4, self.handle_io),)

    def handle_io(self, ex: PortAccess) -> Verdict:
        if not ex.is_write or ex.offset != 0 or ex.size != 4:
            # not a ucall, and not a malformed one either: the port answers nothing else, so the
            # access is an unhandled one (all-ones, traced, fatal under --strict) like any other
            what = f"{'an' if ex.size == 1 else 'a'} {8 * ex.size}-bit {'write' if ex.is_write else 'read'}"
            raise Unclaimed(f"{what} at {ex.port:#x} is not a ucall (a ucall is a 32-bit OUT to {self.port:#x})")
        gpa = ex.value
        try:
            raw = self.memory.read(gpa, SIZE)
        except GuestMemoryError as e:
            return self._reject(gpa, str(e))
        magic, cmd, a0, a1, a2, a3, file_ptr, msg_ptr, line, _ = LAYOUT.unpack(raw)
        if magic != MAGIC:
            return self._reject(gpa, f"bad magic {magic:#x}")
        try:
            call = Ucall(gpa, cmd, [a0, a1, a2, a3], file_ptr, msg_ptr, line, ex.vcpu_index)
            if cmd == SYNC:
                self.syncs.append((a0, a1))
            handler = self.handlers.get(cmd)
            if handler is None:
                call.result = -errno.ENOSYS
                verdict = None
            else:
                verdict = handler(call)
            # through `write`, not a view: a struct on a page SPP traps is written under its lock
            self.memory.write(gpa + ARGS_OFFSET, struct.pack("<4Q", *(a & 0xFFFFFFFFFFFFFFFF for a in call.args)))
            self.memory.write(gpa + RESULT_OFFSET, struct.pack("<i", call.result))
            return verdict
        except GuestMemoryError as e:
            # the struct itself is a ucall the guest can be answered through
            self.memory.write(gpa + RESULT_OFFSET, struct.pack("<i", -errno.EFAULT))
            return self._reject(gpa, str(e))

    def save_state(self) -> dict[str, Any]:
        return {"syncs": [list(s) for s in self.syncs]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.syncs = [(int(a), int(b)) for a, b in state["syncs"]]

    def _reject(self, gpa: int, why: str) -> Verdict:
        self.notices.say(f"rejected ucall at {gpa:#x}: {why}")
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
