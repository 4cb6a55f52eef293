"""What a handler returns: None to resume the guest, or a `Stop`; and what a device raises for an
access it does not answer (`Unclaimed`)."""

from __future__ import annotations

from vmm.errors import UserCodeError
from vmm.record import FrozenRecord

# A process status is one byte: the kernel keeps `status & 0xff`, so 999 would end the process
# with 231 and -1 with 255 while the message named another number. Anything else is refused.
STATUS_RANGE = range(0, 256)


class Stop(FrozenRecord):
    """End the run with process status `status` (an int in 0-255). `fatal` asks for the
    guest-state report. A status out of range, or a non-string reason, is refused at construction
    (UserCodeError, status HANDLER_ERROR): the check costs nothing on the path that resumes.
    Immutable, hashable and compared by value, as a frozen dataclass would be."""

    __slots__ = ("status", "reason", "fatal")  # noqa: RUF023 (the repr's order)
    status: int
    reason: str
    fatal: bool

    def __init__(self, status: int, reason: str = "stopped by a handler", fatal: bool = False) -> None:
        if status.__class__ is bool or not isinstance(status, int) or status not in STATUS_RANGE:
            raise UserCodeError(f"Stop({status!r}, ...): a stop status is an int in 0-255")
        if not isinstance(reason, str):
            raise UserCodeError(f"Stop({status}, {reason!r}): a stop reason is a string")
        self._init(status=status, reason=reason, fatal=fatal)


Verdict = Stop | None


class Unclaimed(Exception):
    """Raised by a port or MMIO device for an access in its range that it does not answer (the
    ucall port takes only a 32-bit OUT to its first byte): the access is then what it would be with
    no device there, an unhandled port or MMIO access (all-ones, traced, fatal under --strict). A
    device declines by the access's kind, so every element of a string I/O exit alike. `why` is
    said where the access is reported."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why
