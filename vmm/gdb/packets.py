"""The gdb remote serial protocol's framing: `$data#cs` packets, acks, and the Ctrl-C byte.

Pure functions of bytes, tested without a socket. A `PacketReader` is fed whatever the socket
gave and yields whole packets (checksum checked: a bad one is answered with '-', as the protocol
says) and interrupts; garbage between packets is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

INTERRUPT = b"\x03"
MAX_PACKET = 1 << 16


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b in b"$#}*":
            out += bytes([0x7D, b ^ 0x20])
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def frame(data: bytes) -> bytes:
    body = escape(data)
    return b"$" + body + b"#" + f"{checksum(body):02x}".encode()


@dataclass
class PacketReader:
    """Incremental parser; `feed()` yields ("packet", data), ("interrupt", b"") and ("bad", b"")."""

    buf: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> Iterator[tuple[str, bytes]]:
        self.buf += chunk
        while self.buf:
            head = self.buf[0]
            if head == 0x03:
                del self.buf[0]
                yield ("interrupt", b"")
                continue
            if head != ord("$"):
                del self.buf[0]  # acks ('+', '-') and garbage between packets
                continue
            end = self.buf.find(b"#")
            if end < 0:
                if len(self.buf) > MAX_PACKET:
                    self.buf.clear()
                    yield ("bad", b"")
                return
            if len(self.buf) < end + 3:
                return
            body = bytes(self.buf[1:end])
            sent = bytes(self.buf[end + 1 : end + 3])
            del self.buf[: end + 3]
            try:
                ok = int(sent, 16) == checksum(body)
            except ValueError:
                ok = False
            yield ("packet", unescape(body)) if ok else ("bad", b"")
