"""The target description with real gdb: `info registers` shows the segment bases, k_gs_base, the
control registers and EFER with their flags decoded, at CPL 0 and CPL 3; values written from gdb
(P packets) land in KVM's state, as `monitor info registers` (read back through KVM) shows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import GUESTS
from gdb_session import finish, free_port, gdb, start

pytestmark = [pytest.mark.kvm, pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")]
ELF = GUESTS / "debug-target.elf"


def reg(text: str, name: str) -> str:
    m = re.search(rf"^{name}\s+(\S+)\s+(.*)$", text, re.M)
    assert m, f"{name} missing from:\n{text}"
    return m.group(1) + " " + m.group(2).strip()


def test_info_registers_shows_bases_control_registers_and_efer(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port)
    text = gdb(port, [
        "info registers",
        "set $fs_base = 0x1234000", "set $k_gs_base = 0xffff800000001000", "set $rax = 0x55aa",
        "monitor info registers",
        "set $mxcsr = 0x1f80", "set $xmm1.v2_int64[0] = 0x1122334455667788", "stepi",
        "p/x $xmm1.v2_int64[0]", "p/x $mxcsr", "p/x $fctrl",
        # into the CPL-3 phase: bump()'s fourth store, the first at CPL 3 (a watchpoint stops there)
        "watch *(unsigned long *)&counter", "continue", "continue", "continue", "continue", "delete",
        "p $cs", "info registers cr0",
        "kill",
    ], tmp_path, ELF)  # fmt: skip
    finish(proc)
    assert reg(text, "cr0").startswith("0x80010033 [ PE MP ET NE WP PG ]")
    assert reg(text, "efer").startswith("0x501 [ SCE LME LMA ]")
    assert reg(text, "cr4").startswith("0x620 [ PAE OSFXSR OSXMMEXCPT ]")
    assert re.search(r"^cr3\s+0x[0-9a-f]+\s+\[ PCID=0 PDBR=\d+ \]", text, re.M), text
    for name in ("cr2", "cr8", "fs_base", "gs_base", "k_gs_base"):
        assert reg(text, name).startswith("0x0 0"), name  # as the boot state sets them
    for name in ("rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs"):
        reg(text, name)
    # what gdb wrote is what KVM now holds (monitor info registers reads KVM_GET_SREGS and the MSR)
    assert re.search(r"fs_base 0x0000000001234000", text), text
    assert re.search(r"k_gs_base 0xffff800000001000", text), text
    assert re.search(r"rax 0x00000000000055aa", text), text
    # SSE state written through KVM_SET_FPU survives a step (gdb reads it again afterwards)
    assert "$1 = 0x1122334455667788" in text, text
    assert "$2 = 0x1f80" in text
    assert "$3 = 0x37f" in text  # FCW's reset value
    assert "$4 = 27" in text, text  # CS 0x1b: the registers are read at CPL 3 as well
    assert text.count("[ PE MP ET NE WP PG ]") == 2


def test_the_description_is_served_in_pieces() -> None:
    """gdb asks for the XML in pieces of its choosing; a small one must still add up to the whole."""
    import socket

    port = free_port()
    proc = start(port)
    with socket.create_connection(("127.0.0.1", port)) as s:

        def ask(pkt: bytes) -> bytes:
            s.sendall(b"$" + pkt + b"#" + f"{sum(pkt) & 0xFF:02x}".encode())
            got = b""
            while b"#" not in got.lstrip(b"+") or len(got) < got.index(b"#", got.index(b"$")) + 3:
                got += s.recv(65536)
            return got[got.index(b"$") + 1 : got.rindex(b"#")]

        whole = b""
        offset = 0
        while True:
            piece = ask(f"qXfer:features:read:target.xml:{offset:x},100".encode())
            whole += piece[1:]
            offset += len(piece) - 1
            if piece[:1] == b"l":
                break
            assert piece[:1] == b"m"
        assert ask(b"qXfer:features:read:other.xml:0,100") == b"E00"
        s.sendall(b"$k#6b")
    finish(proc)
    assert whole.startswith(b'<?xml version="1.0"?>') and whole.endswith(b"</target>")
    assert b'<feature name="org.gnu.gdb.i386.core">' in whole and b'<feature name="org.gnu.gdb.i386.sse">' in whole
    for name in (b"fs_base", b"gs_base", b"k_gs_base", b"cr0", b"cr2", b"cr3", b"cr4", b"cr8", b"efer"):
        assert b'<reg name="' + name + b'"' in whole
