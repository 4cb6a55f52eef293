"""Where guest console bytes go: one binary stream shared by the UART and the debug console."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import BinaryIO


class Console:
    """Buffers guest output and flushes it at each newline, so a log follows the guest closely.

    A stream that can no longer be written (`pyvmm run ... | head` closing the pipe, a full disk)
    does not end the run: the guest goes on, what it prints is kept in `transcript` and counted in
    `dropped`, and `failure` says why, for the one line the run ends with."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.transcript = bytearray()  # everything the guest printed, for tests and reports
        self.failure: str | None = None  # why the stream stopped taking bytes
        self.dropped = 0  # bytes not written since then

    def put(self, byte: int) -> None:
        self.transcript.append(byte)
        if self.failure is not None:
            self.dropped += 1
            return
        try:
            self.stream.write(bytes((byte,)))
            if byte == 0x0A:
                self.stream.flush()
        except OSError as e:
            self._failed(e, 1)

    def write(self, data: bytes) -> None:
        self.transcript += data
        if self.failure is not None:
            self.dropped += len(data)
            return
        try:
            self.stream.write(data)
            self.stream.flush()
        except OSError as e:
            self._failed(e, len(data))

    def flush(self) -> None:
        if self.failure is None:
            try:
                self.stream.flush()
            except OSError as e:
                self._failed(e, 0)

    def _failed(self, error: OSError, lost: int) -> None:
        self.failure = error.strerror or str(error)
        self.dropped += lost
