"""gdb with several vCPUs (all-stop): mb-smp at -smp 2 (the boot CPU starts the AP with INIT,
SIPI, SIPI). Every vCPU is a thread; a stop stops both (the other is parked through the runner's
pause); `thread 2` reads the AP's own registers; a breakpoint the AP reaches reports thread 2;
the run ends with the guest's own status."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import GUESTS
from gdb_session import finish, free_port, gdb, start, symbol

pytestmark = [pytest.mark.kvm, pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")]
MB_SMP = GUESTS / "mb" / "mb-smp.elf"


def rips(text: str) -> list[int]:
    return [int(v, 16) for v in re.findall(r"^rip\s+(0x[0-9a-f]+)", text, re.M)]


def test_two_vcpus_are_two_threads_stopped_together(tmp_path: Path) -> None:
    port = free_port()
    proc = start(port, "-smp", "2", image=str(MB_SMP))
    ap_main = symbol(MB_SMP, "ap_main")
    text = gdb(port, [
        "info threads", "thread 2", "info registers rip", "thread 1", "info registers rip",
        f"hbreak *{ap_main:#x}", "continue", "info threads", "info registers rip",
        "thread 1", "info registers rip", "stepi", "info registers rip",
        "delete", "continue",
    ], tmp_path, None)  # fmt: skip
    status, out, _ = finish(proc)
    assert "* 1    Thread 1 (vCPU 0)" in text and "  2    Thread 2 (vCPU 1)" in text, text
    first = rips(text)
    # at -S: the boot vCPU at the kernel's entry, the AP still at its reset vector waiting for SIPI
    assert first[0] == 0xFFF0 and first[1] == symbol(MB_SMP, "_start")
    assert "Thread 2 hit Breakpoint 1" in text, text  # the stop came from the AP, reported as thread 2
    assert f"* 2    Thread 2 (vCPU 1) {ap_main:#018x}" in text
    assert first[2] == ap_main and first[3] != ap_main  # the boot vCPU was stopped elsewhere
    assert first[4] != first[3]  # stepi moved the boot vCPU on
    assert status == 41 and "smp: all 2 cpus up" in out  # 0x14, the guest's own status


def test_ctrl_c_stops_both_vcpus(tmp_path: Path) -> None:
    """Ctrl-C is the byte 0x03: sent on a socket of our own once both vCPUs run."""
    import socket
    import time

    port = free_port()
    proc = start(port, "-smp", "2", image="hang")
    with socket.create_connection(("127.0.0.1", port)) as s:

        def ask(pkt: bytes) -> bytes:
            if pkt:
                s.sendall(b"$" + pkt + b"#" + f"{sum(pkt) & 0xFF:02x}".encode())
            got = b""
            while b"$" not in got or b"#" not in got[got.index(b"$") :] or len(got) < got.rindex(b"#") + 3:
                got += s.recv(4096)
            return got[got.index(b"$") + 1 : got.rindex(b"#")]

        assert ask(b"qfThreadInfo") == b"m1,2"
        s.sendall(b"$c#63")
        time.sleep(0.5)
        s.sendall(b"\x03")
        stop = ask(b"")
        assert stop.startswith(b"T02thread:"), stop
        assert ask(b"Hg2") == b"OK"
        assert len(ask(b"p10")) == 16  # the other vCPU's RIP, read while it is parked
        s.sendall(b"$k#6b")
    status, _, err = finish(proc)
    assert status == 62 and "Traceback" not in err


def test_a_watchpoint_set_while_both_vcpus_are_stopped(tmp_path: Path) -> None:
    """With SPP already on (--spp), setting the watch rebuilds memslots from the stopped vCPU's
    thread while the other is parked: the pause nests inside the debugger's (it once waited on
    itself). `turn` is stored by each CPU in its turn: the AP's store (2) is reported as thread 2."""
    port = free_port()
    proc = start(port, "-smp", "2", "--spp", "0x700000", image=str(MB_SMP))
    turn = symbol(MB_SMP, "turn")
    text = gdb(port, [
        f"hbreak *{symbol(MB_SMP, 'ap_main'):#x}", "continue", "delete",  # both vCPUs running, then stopped
        f"watch *(int *){turn:#x}", "continue", "continue", "info threads", "delete", "continue",
    ], tmp_path, None)  # fmt: skip
    status, out, _ = finish(proc)
    news = [int(v) for v in re.findall(r"^New value = (\d+)$", text, re.M)]
    # the boot CPU's store (1) may come before the AP reached ap_main, so before the watch was set
    assert news in ([1, 2], [2]), text
    assert "Thread 2 hit Hardware watchpoint" in text, text
    assert status == 41 and "smp: all 2 cpus up" in out
