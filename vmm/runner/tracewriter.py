"""The trace file's one writer: vCPU threads hand records over, a thread of its own writes them.

A vCPU thread only extends one flat list by a record's `width` items (`list.extend` of a tuple is
one C call: atomic under the GIL, so a record's items stay together; no lock, no I/O); the writer
thread wakes every `FLUSH_INTERVAL`, takes what has arrived with one slice and one `del` (the vCPU
threads only add at the end, so the items it took are still the first ones when it deletes them),
formats them into complete lines (the owner's `format_batch`: one line per record, many records
at a time, from the flat items) and writes them with `os.write`, in pieces of at most `BATCH`
records. A header goes before the first record and a trailer after the
last (a timeline's brackets); neither counts as a record. So lines from several vCPUs never
interleave, and a slow or failing disk never stalls a vCPU. A write that fails (a full disk,
/dev/full, EIO) drops that batch and the run goes on; a short write is cut back to its last whole
line where the file can be truncated, so the file holds only complete JSON objects. `dropped`
counts every record that did not reach the file.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

FLUSH_INTERVAL = 0.02  # seconds between the writer's batches
MAX_PENDING = 500_000  # records waiting beyond this are dropped (and counted), not held in memory
BATCH = 1024  # records formatted and written at once: large writes, bounded memory, the GIL held ~1 ms

if TYPE_CHECKING:
    FormatBatch = Callable[[list[Any]], bytes]  # records' items, flat -> their lines, one "\n"-terminated line each


def _nothing() -> str:
    return ""


class TraceWriter:
    def __init__(
        self, fd: int, fmt: FormatBatch, width: int, header: Callable[[], str] = _nothing,
        trailer: Callable[[], str] = _nothing,
    ) -> None:  # fmt: skip
        self.width = width  # items in every record (vmm.runner.records.WIDTH)
        self.fd = fd
        self.fmt = fmt
        self._header: Callable[[], str] | None = header
        self._trailer: Callable[[], str] | None = trailer
        self.pending: list[Any] = []  # the records' items, `width` a record
        self.put = self.pending.extend  # what a vCPU thread calls, once per record, with the record
        self.written = 0
        self.dropped = 0
        self.error: str | None = None  # the first write failure, for the end-of-run line
        self.user_s = self.sys_s = 0.0  # CPU time of the writer thread (formatting; writing), for the bench
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
        """Write everything handed over so far and stop the thread (after the vCPU threads); a
        later run starts it again."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self._drain()

    def close(self) -> None:
        """After the last run: whatever is still pending, then the trailer, once."""
        self.finish()
        if self._trailer is not None:
            self._put_text(self._trailer())
            self._trailer = None

    def _main(self) -> None:
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        while not self._stop.wait(FLUSH_INTERVAL):
            self._drain()
        self._drain()
        r1 = resource.getrusage(resource.RUSAGE_THREAD)
        self.user_s += r1.ru_utime - r0.ru_utime
        self.sys_s += r1.ru_stime - r0.ru_stime


    def _drain(self) -> None:
        if self._header is not None:
            self._put_text(self._header())
            self._header = None
        pending, width = self.pending, self.width
        items = pending[:]  # every record handed over so far, whole: each came in one extend
        del pending[: len(items)]
        n = len(items) // width
        if n > MAX_PENDING:  # the writer fell far behind: keep memory bounded, and say so
            self.dropped += n - MAX_PENDING
            del items[: (n - MAX_PENDING) * width]
            n = MAX_PENDING
        step = BATCH * width
        for i in range(0, n * width, step):
            batch = items[i : i + step]
            self._write(self.fmt(batch), len(batch) // width)

    def _put_text(self, text: str) -> None:
        """The header or trailer: written whole or not at all, and not counted as records."""
        if text:
            self._write(text.encode(), 0)

    def _write(self, data: bytes, records: int) -> None:
        try:
            done = os.write(self.fd, data)
        except OSError as e:
            self._failed(e, records)
            return
        if done == len(data):
            self.written += records
            if self._offset is not None:
                self._offset += done
            return
        # a short write: keep the whole lines that made it, cut off the partial one
        whole = data.rfind(b"\n", 0, done) + 1
        kept = min(data[:whole].count(b"\n"), records)
        self.written += kept
        if self._offset is not None:
            try:
                os.ftruncate(self.fd, self._offset + whole)
                os.lseek(self.fd, self._offset + whole, os.SEEK_SET)
                self._offset += whole
            except OSError:
                pass
        self._failed(OSError(28, os.strerror(28)), records - kept)

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

