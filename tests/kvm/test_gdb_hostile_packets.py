"""A debugger that sends nonsense: every packet gets an answer (an error, or empty for what is not
supported), never a traceback, and the guest is unharmed: it still runs to its own status."""

from __future__ import annotations

import shutil
import socket

import pytest
from gdb_session import finish, free_port, start

pytestmark = [pytest.mark.kvm, pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")]

HOSTILE = [
    b"Z0,ffffffffffffffffffff,1",
    b"Z1,-5,1",
    b"Z2,zz,8",
    b"Z2,100000,0",
    b"Z2,100000,ffffffffff",
    b"Z3,100000,8",
    b"Z4,100000,8",
    b"Z9,0,0",
    b"z0,100000",
    b"m",
    b"m,",
    b"mzz,4",
    b"m10000000000000000,4",
    b"Mzz",
    b"M100000,1:zz",
    b"M100000,1:a",
    b"p",
    b"pzz",
    b"p9999",
    b"P10=zz",
    b"P999=00",
    b"P12=0000",
    b"Hgzz",
    b"Hg99",
    b"Hc99",
    b"Tzz",
    b"T99",
    b"qXfer:features:read:target.xml:zz",
    b"qXfer:features:read:target.xml",
    b"qXfer:features:read:x:0,10",
    b"qRcmd,zz",
    b"qRcmd," + b"info nothing".hex().encode(),
    b"qThreadExtraInfo,zz",
    b"Qqemu.PhyMemMode:",
    b"vCont;s",
    b"X100000,1:\x00",
    b"\xff\xfe",
    b"qSupported:" + b"A" * 3000,
]


def test_every_hostile_packet_is_answered_and_the_guest_runs_on() -> None:
    port = free_port()
    proc = start(port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)

        def ask(pkt: bytes) -> bytes:
            s.sendall(b"$" + pkt + b"#" + f"{sum(pkt) & 0xFF:02x}".encode())
            got = b""
            while b"$" not in got or b"#" not in got[got.index(b"$") :] or len(got) < got.rindex(b"#") + 3:
                got += s.recv(65536)
            return got[got.index(b"$") + 1 : got.rindex(b"#")]

        answers = {pkt: ask(pkt) for pkt in HOSTILE}
        assert ask(b"?") == b"T05thread:1;"  # the stub still answers as before
        s.sendall(b"$c#63")
        exit_reply = b""
        while b"$W" not in exit_reply:
            exit_reply += s.recv(4096)
    status, out, err = finish(proc)
    assert "Traceback" not in err
    for pkt in (b"Z0,ffffffffffffffffffff,1", b"Z2,zz,8", b"mzz,4", b"m10000000000000000,4", b"pzz", b"P10=zz"):
        assert answers[pkt].startswith(b"E"), (pkt, answers[pkt])
    assert answers[b"Z3,100000,8"] == b"" and answers[b"Z4,100000,8"] == b""  # unsupported, by the protocol
    assert answers[b"P12=0000"] == b"E45"  # a selector cannot be written alone
    assert b"$W63" in exit_reply and status == 99 and "debug-target: done" in out
    assert "traps cpu=0 total=0" in out
