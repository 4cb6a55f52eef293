"""The trace file's one writer: vCPU threads hand records over, a thread of its own writes them.

A vCPU thread only appends a tuple to a deque (atomic under the GIL, no lock, no I/O); the writer
thread wakes every `FLUSH_INTERVAL`, formats what has arrived into complete lines and writes them
with `os.write`. So lines from several vCPUs never interleave, and a slow or failing disk never
stalls a vCPU. A write that fails (a full disk, /dev/full, EIO) drops that batch and the run goes
on; a short write is cut back to its last whole line where the file can be truncated, so the file
holds only complete JSON objects. `dropped` counts every record that did not reach the file.
"""

from __future__ import annotations

import collections
import json
import os
import threading
from collections.abc import Callable
from typing import Any

FLUSH_INTERVAL = 0.02  # seconds between the writer's batches
MAX_PENDING = 500_000  # records waiting beyond this are dropped (and counted), not held in memory

Format = Callable[[Any], str]


class TraceWriter:
    def __init__(self, fd: int, fmt: Format) -> None:
        self.fd = fd
        self.fmt = fmt
        self.pending: collections.deque[Any] = collections.deque()
        self.put = self.pending.append  # what a vCPU thread calls, once per record
        self.written = 0
        self.dropped = 0
        self.error: str | None = None  # the first write failure, for the end-of-run line
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._offset: int | None = os.lseek(fd, 0, os.SEEK_CUR)
        except OSError:
            self._offset = None  # a pipe or a character device: no truncation back to a whole line

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._main, name="pyvmm-trace-writer", daemon=True)
            self._thread.start()

    def finish(self) -> None:
        """Write everything handed over so far and stop the thread (after the vCPU threads)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self._drain()

    def _main(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        pending = self.pending
        n = len(pending)
        if n == 0:
            return
        if n > MAX_PENDING:  # the writer fell far behind: keep memory bounded, and say so
            for _ in range(n - MAX_PENDING):
                pending.popleft()
            self.dropped += n - MAX_PENDING
            n = MAX_PENDING
        fmt, pop = self.fmt, pending.popleft
        lines = [fmt(pop()) for _ in range(n)]
        self._write(lines)

    def _write(self, lines: list[str]) -> None:
        data = "".join(lines).encode()
        try:
            done = os.write(self.fd, data)
        except OSError as e:
            self._failed(e, len(lines))
            return
        if done == len(data):
            self.written += len(lines)
            if self._offset is not None:
                self._offset += done
            return
        # a short write: keep the whole lines that made it, cut off the partial one
        whole = data.rfind(b"\n", 0, done) + 1
        kept = data[:whole].count(b"\n")
        self.written += kept
        if self._offset is not None:
            try:
                os.ftruncate(self.fd, self._offset + whole)
                os.lseek(self.fd, self._offset + whole, os.SEEK_SET)
                self._offset += whole
            except OSError:
                pass
        self._failed(OSError(28, os.strerror(28)), len(lines) - kept)

    def _failed(self, e: OSError, lost: int) -> None:
        self.dropped += lost
        if self.error is None:
            self.error = e.strerror or str(e)

    def summary(self, what: str) -> str | None:
        """One line for the end of the run if records were lost, else None."""
        if not self.dropped:
            return None
        total = self.written + self.dropped
        return f"{what}: {self.dropped} of {total} records dropped ({self.error or 'the writer fell behind'})"


def json_line(record: Any) -> str:
    return json.dumps(record, separators=(", ", ": ")) + "\n"
