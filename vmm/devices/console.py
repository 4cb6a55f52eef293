"""Where guest console bytes go: one binary stream shared by the UART and the debug console."""

from __future__ import annotations

from typing import BinaryIO


class Console:
    """Buffers guest output and flushes it at each newline, so a log follows the guest closely."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.transcript = bytearray()  # everything the guest printed, for tests and reports

    def put(self, byte: int) -> None:
        self.transcript.append(byte)
        self.stream.write(bytes((byte,)))
        if byte == 0x0A:
            self.stream.flush()

    def write(self, data: bytes) -> None:
        self.transcript += data
        self.stream.write(data)
        self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()
