"""gdb remote-protocol framing: checksums, escaping, packets split across reads, interrupts,
garbage, bad checksums; and the -gdb address spellings."""

from __future__ import annotations

import pytest

from vmm.errors import ConfigError
from vmm.gdb.packets import PacketReader, checksum, escape, frame, unescape
from vmm.gdb.stub import parse_gdb_address


def test_frame_and_checksum() -> None:
    assert frame(b"OK") == b"$OK#9a"
    assert checksum(b"qSupported") == 0x37


def test_escaping_round_trips() -> None:
    data = b"a$b#c}d*e"
    assert escape(b"$#") == b"}\x04}\x03"
    assert unescape(escape(data)) == data


def test_reader_joins_split_packets_and_skips_acks_and_garbage() -> None:
    r = PacketReader()
    assert list(r.feed(b"+junk$qSupp")) == []
    assert list(r.feed(b"orted#37\x03$g#67")) == [("packet", b"qSupported"), ("interrupt", b""), ("packet", b"g")]


def test_a_bad_checksum_is_reported() -> None:
    assert list(PacketReader().feed(b"$g#00$?#3f")) == [("bad", b""), ("packet", b"?")]
    assert list(PacketReader().feed(b"$g#zz")) == [("bad", b"")]


def test_gdb_addresses() -> None:
    assert parse_gdb_address("tcp::1234") == ("tcp", ("127.0.0.1", 1234))
    assert parse_gdb_address("tcp:0.0.0.0:99") == ("tcp", ("0.0.0.0", 99))
    assert parse_gdb_address("unix:/tmp/g.sock,server") == ("unix", "/tmp/g.sock")
    for bad in ("tcp:1234", "tcp::0", "tcp::x", "unix:", "1234"):
        with pytest.raises(ConfigError):
            parse_gdb_address(bad)
