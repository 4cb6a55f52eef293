"""Lines the monitor prints because of something a guest did (a refused ucall, a bad request).

A guest can trigger them as fast as it can exit, so they are rate-limited: the first `limit`
lines are printed, the rest counted, and `summary()` says how many were held back.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import TextIO


class GuestNotices:
    def __init__(self, log: TextIO, limit: int = 20) -> None:
        self.log = log
        self.limit = limit
        self.printed = 0
        self.suppressed = 0
        self._lock = threading.Lock()  # vCPU threads share it

    def say(self, line: str) -> None:
        with self._lock:
            if self.printed < self.limit:
                self.printed += 1
                self.log.write(f"pyvmm: {line}\n")
            else:
                self.suppressed += 1

    def summary(self) -> str | None:
        if not self.suppressed:
            return None
        return f"{self.suppressed} more guest-triggered messages like the above were not printed"
