"""The power button wakes a machine suspended to RAM with no alarm armed (guests/mb/mb-acpi.c,
`-append pwrbtn`): under QEMU through its `system_wakeup` command (QMP), under pyvmm through
SIGUSR2 and through its monitor's `system_wakeup`. The serial output and the status must be the
same: PM1a_STS reads WAK_STS and PWRBTN_STS after the wake, as QEMU reports its wakes that are not
the RTC's or the PM timer's. On a running machine (`-append sci`) the button (QEMU's
`system_powerdown`, pyvmm's SIGUSR2 and monitor `system_powerdown`) raises the SCI, IRQ 9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GUESTS, ROOT, skip_without_qemu
from test_qemu_compat_multiboot import QEMU, QEMU_TIMEOUT, status

pytestmark = pytest.mark.kvm

KERNEL = GUESTS / "mb" / "mb-acpi.elf"
PYVMM = [sys.executable, "-m", "vmm.cli"]
SLEEPING = b"s3: sleeping\n"
PROMPT = b"(pyvmm) "
PRESS_EVERY = 0.3  # seconds between presses until the machine wakes (a press before it sleeps is lost)
EXPECTED_TAIL = [
    "s3: waking vector 0x60000, no alarm (the power button wakes it), 0x10000 bytes of pattern at 0x200000",
    "s3: sleeping",
    "resumed from S3",
    "s3: pattern intact, pm1 status: WAK_STS 1, RTC_STS 0, PWRBTN_STS 1",
]


def run_until_woken(
    args: list[str], press: Callable[[subprocess.Popen[bytes]], bool], ready: bytes = SLEEPING
) -> tuple[int, bytes, bytes]:
    """Start `args`, wait for the guest to print `ready` (it sleeps, or waits for the button), then
    `press` until it returns True (the press was taken) or the process ends; the status, the whole
    serial output and stderr."""
    proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = b""
    deadline = time.monotonic() + QEMU_TIMEOUT
    try:
        while ready not in out and time.monotonic() < deadline:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            out += chunk
        assert ready in out, out
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(PRESS_EVERY)
            if press(proc):
                break
        out += proc.stdout.read()
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), out, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def qmp_system_wakeup(path: Path, command: str = "system_wakeup") -> Callable[[subprocess.Popen[bytes]], bool]:
    """QEMU's press: `system_wakeup`, which QEMU refuses until the guest is suspended (or
    `system_powerdown`, which it always takes: the press counts once the process has ended)."""
    conn: list[socket.socket] = []

    def press(proc: subprocess.Popen[bytes]) -> bool:
        if not conn:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            conn.append(s)
            f = s.makefile("rw")
            f.readline()  # the greeting
            f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
            f.flush()
            f.readline()
        f = conn[0].makefile("rw")
        f.write(json.dumps({"execute": command}) + "\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "return" in reply or "error" in reply:
                break
        if command != "system_wakeup":
            return ended(proc)
        return "return" in reply

    return press


def ended(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(timeout=PRESS_EVERY)
    except subprocess.TimeoutExpired:
        return False
    return True


def monitor_system_wakeup(path: Path, command: str = "system_wakeup") -> Callable[[subprocess.Popen[bytes]], bool]:
    """pyvmm's press through `-monitor unix:PATH,server,nowait`: `system_wakeup`, refused (with
    QEMU's message) until the guest sleeps."""
    conn: list[socket.socket] = []

    def reply(s: socket.socket) -> str:
        data = b""
        while not data.endswith(PROMPT):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode().removesuffix(PROMPT.decode())

    def press(proc: subprocess.Popen[bytes]) -> bool:
        if not conn:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            conn.append(s)
            reply(s)  # the first prompt
        conn[0].sendall(f"{command}\n".encode())
        answer = reply(conn[0])
        assert answer in ("", "Unable to wake up: guest is not in suspended state\n"), answer
        return answer == "" and (command == "system_wakeup" or ended(proc))

    return press


def sigusr2(proc: subprocess.Popen[bytes]) -> bool:
    proc.send_signal(signal.SIGUSR2)
    return ended(proc)


def test_the_power_button_wakes_pyvmm_as_system_wakeup_wakes_qemu(tmp_path: Path) -> None:
    if QEMU is None:
        skip_without_qemu()
    assert QEMU is not None
    sock = tmp_path / "qmp.sock"
    qemu = [
        QEMU, "-accel", "kvm", "-no-reboot", "-display", "none", "-vga", "none", "-nic", "none",
        "-monitor", "none", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-m", "128M",
        "-kernel", str(KERNEL), "-machine", "pc", "-no-hpet", "-append", "pwrbtn",
        "-qmp", f"unix:{sock},server=on,wait=off",
    ]  # fmt: skip
    want_status, want, _ = run_until_woken(qemu, qmp_system_wakeup(sock))
    assert want_status == status(0x19) and want.decode().splitlines()[-4:] == EXPECTED_TAIL, want
    pyvmm = [*PYVMM, "run", str(KERNEL), "-m", "128M", "-machine", "pc", "-no-hpet", "--append", "pwrbtn",
             "--timeout", "60"]  # fmt: skip
    got_status, got, err = run_until_woken(pyvmm, sigusr2)
    assert got.decode() == want.decode(), err
    assert got_status == want_status, err
    assert b"the power button (SIGUSR2) wakes it" in err
    sock = tmp_path / "monitor.sock"
    got_status, got, err = run_until_woken([*pyvmm, "-monitor", f"unix:{sock},server,nowait"],
                                           monitor_system_wakeup(sock))  # fmt: skip
    assert got.decode() == want.decode(), err
    assert got_status == want_status, err


def test_the_power_button_raises_the_sci_as_system_powerdown_does(tmp_path: Path) -> None:
    if QEMU is None:
        skip_without_qemu()
    assert QEMU is not None
    waiting = b"sci: waiting"
    sock = tmp_path / "qmp.sock"
    qemu = [
        QEMU, "-accel", "kvm", "-no-reboot", "-display", "none", "-vga", "none", "-nic", "none",
        "-monitor", "none", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-m", "128M",
        "-kernel", str(KERNEL), "-machine", "pc", "-no-hpet", "-append", "sci",
        "-qmp", f"unix:{sock},server=on,wait=off",
    ]  # fmt: skip
    want_status, want, _ = run_until_woken(qemu, qmp_system_wakeup(sock, "system_powerdown"), waiting)
    assert want_status == status(0x1A), want
    assert want.decode().splitlines()[-2:] == [
        "sci: waiting for the power button (PWRBTN_EN set, irq 9 at vector 0x29)",
        "sci: vector 0x29, pm1 status: PWRBTN_STS 1, pm1 enable 0x0100",
    ]
    pyvmm = [*PYVMM, "run", str(KERNEL), "-m", "128M", "-machine", "pc", "-no-hpet", "--append", "sci",
             "--timeout", "60"]  # fmt: skip
    got_status, got, err = run_until_woken(pyvmm, sigusr2, waiting)
    assert (got_status, got.decode()) == (want_status, want.decode()), err
    mon = tmp_path / "monitor.sock"
    got_status, got, err = run_until_woken([*pyvmm, "-monitor", f"unix:{mon},server,nowait"],
                                           monitor_system_wakeup(mon, "system_powerdown"), waiting)  # fmt: skip
    assert (got_status, got.decode()) == (want_status, want.decode()), err


def test_sigusr2_outside_a_sleep_does_not_end_pyvmm() -> None:
    """A press on a running machine only sets PWRBTN_STS: the run goes on to its alarm wake."""
    proc = subprocess.Popen([*PYVMM, "run", str(KERNEL), "-machine", "pc", "--timeout", "60"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the machine runs: its first line is out
    os.kill(proc.pid, signal.SIGUSR2)
    out, err = proc.communicate(timeout=90)
    assert first.startswith(b"acpi: rsdp") and proc.returncode == status(0x19), err
    assert (first + out).decode().splitlines()[-1] == "s3: pattern intact, pm1 status: WAK_STS 1, RTC_STS 1"
