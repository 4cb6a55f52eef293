"""`GdbStub`: a gdb remote stub for one VM, a participant on the runner's hooks.

A server thread accepts one debugger at a time and passes its packets on; the commands run on a
stopped vCPU's own thread (the only thread that may issue its ioctls between runs). A debugger
that connects stops the guest (as QEMU's does); `-S` stops it before its first instruction;
Ctrl-C kicks the vCPU out of KVM_RUN and stops it; a debugger that goes away lets the guest run
on. Breakpoints (Z0 and Z1 alike) use the debug registers: `int3` is not emulated at CPL 0 on this
host (README, host notes), and nothing reaches the monitor from CPL 3. Watchpoints (Z2-Z4) are
answered as unsupported, since data breakpoints never fire here: gdb then watches by stepping.

Limits: one vCPU only (a machine with more is refused: stopping the others while one is stopped
is not done yet, and reading a vCPU inside KVM_RUN would block until its next exit). The
registers are gdb's default amd64 set up to the segment selectors (no target description yet: no
FS/GS base or control registers); memory is read by guest-virtual address (KVM_TRANSLATE).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Sequence
from typing import Any

from kvm_abi import constants as C
from vmm.errors import ConfigError, ExitStatus
from vmm.gdb.packets import PacketReader, frame
from vmm.kvm.exits import DebugExit
from vmm.kvm.vcpu import Vcpu
from vmm.runner.participant import Participant, RunContext
from vmm.runner.policy import PASS, ExitPolicy, Pass
from vmm.verdict import Stop, Verdict

SIGINT, SIGTRAP = 2, 5
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")  # gdb's amd64 order after rip and eflags
SLOTS = 4
_DISCONNECTED = b""  # what the inbox carries when the debugger has gone


def parse_gdb_address(spec: str) -> tuple[str, Any]:
    """QEMU's -gdb spellings: tcp::PORT, tcp:HOST:PORT, unix:PATH (optionally ',server...')."""
    text = spec.split(",")[0]
    if text.startswith("tcp:"):
        host, colon, port = text[4:].rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"-gdb {spec!r}: the port must be a number from 1 to 65535")
        return ("tcp", (host or "127.0.0.1", int(port)))
    if text.startswith("unix:") and len(text) > 5:
        return ("unix", text[5:])
    raise ConfigError(f"-gdb {spec!r}: use tcp::PORT, tcp:HOST:PORT or unix:PATH")


class GdbStub(Participant):
    def __init__(self, vcpus: Sequence[Vcpu], policy: ExitPolicy, memory: Any, address: str, *, wait: bool) -> None:
        self.vcpus = list(vcpus)
        self.memory = memory
        kind, where = parse_gdb_address(address)
        if len(self.vcpus) > 1:
            # reading a vCPU that sits in KVM_RUN blocks until its next exit, and parking the others
            # while one is stopped is not done yet: refuse rather than hang the debugger
            raise ConfigError("-gdb supports one vCPU for now (-smp 1): the other vCPUs cannot be stopped yet")
        try:
            if kind == "tcp":
                self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            else:
                self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(where)
            self.listener.bind(where)
            self.listener.listen(1)
        except OSError as e:
            raise ConfigError(f"-gdb {address}: cannot listen: {e.strerror}") from None
        self.address = address
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.conn: socket.socket | None = None
        self.noack = False
        self.stop_wanted = wait
        self.resumed = False  # a c or s is outstanding: its stop reply is owed
        self.stopped = False  # a vCPU waits in _stopped for the debugger
        self.stepping: set[int] = set()
        self.slots: list[int | None] = [None] * SLOTS
        self.current = 0  # the thread (vCPU index) g/G/m/M act on
        self._run: RunContext | None = None
        self._last_signal = SIGTRAP
        self._lock = threading.Lock()
        policy.claim(DebugExit, self._on_debug)
        threading.Thread(target=self._serve, name="pyvmm-gdb", daemon=True).start()

    # --- the socket side ------------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.conn, self.noack = conn, False
            if not self.stopped:
                self._interrupt()  # a debugger that connects finds the guest stopped
            reader = PacketReader()
            try:
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    for kind, data in reader.feed(chunk):
                        if kind == "interrupt":
                            self._interrupt()
                        elif kind == "bad":
                            self._raw(b"-")
                        else:
                            if not self.noack:
                                self._raw(b"+")
                            if data == b"QStartNoAckMode":
                                self._raw(frame(b"OK"))
                                self.noack = True
                                continue
                            self.inbox.put(data)
            except OSError:
                pass
            with self._lock:
                self.conn = None
            with contextlib.suppress(OSError):
                conn.close()
            self.inbox.put(_DISCONNECTED)

    def _raw(self, data: bytes) -> None:
        with self._lock:
            if self.conn is not None:
                with contextlib.suppress(OSError):
                    self.conn.sendall(data)

    def _send(self, text: str) -> None:
        self._raw(frame(text.encode()))

    def _interrupt(self) -> None:
        self.stop_wanted = True
        if self._run is not None:
            self._run.control.kick()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            if self.conn is not None:
                with contextlib.suppress(OSError):
                    self.conn.shutdown(socket.SHUT_RDWR)

    # --- participant hooks -------------------------------------------------------------------------
    def run_started(self, run: RunContext) -> None:
        self._run = run
        if self.stop_wanted:
            self.vcpus[0].request_stop()  # the first KVM_RUN returns at once: stop before any instruction

    def on_kick(self, vcpu: Vcpu) -> Verdict:
        if self.stop_wanted and vcpu.index == 0:
            self.stop_wanted = False
            return self._stopped(vcpu, SIGINT if self.resumed else SIGTRAP)
        return None

    def run_ended(self, run: RunContext) -> None:
        self._run = None
        outcome = run.control.outcome
        if self.conn is not None and outcome is not None:
            # the guest is gone: tell the debugger its status, as for a process that exited
            self._send(f"W{outcome.stop.status & 0xFF:02x}")

    def _on_debug(self, ex: DebugExit) -> Verdict | Pass:
        vcpu: Vcpu = ex.vcpu  # type: ignore[assignment]
        if self.conn is None and not self.stepping and not any(s is not None for s in self.slots):
            return PASS
        self.stepping.discard(vcpu.index)
        return self._stopped(vcpu, SIGTRAP)

    # --- the stopped vCPU ----------------------------------------------------------------------------
    def _stopped(self, vcpu: Vcpu, sig: int) -> Verdict:
        self.current = vcpu.index
        if self.resumed:
            self.resumed = False
            self._send(f"T{sig:02x}thread:{vcpu.index + 1:x};")
        self._last_signal = sig
        self.stopped = True
        try:
            # Only this vCPU stops: the others run on (not gdb's all-stop; see the module docstring)
            return self._serve_stop(vcpu)
        finally:
            self.stopped = False

    def _serve_stop(self, vcpu: Vcpu) -> Verdict:
        control = self._run.control if self._run is not None else None
        while True:
            try:
                data = self.inbox.get(timeout=0.2)
            except queue.Empty:
                if control is not None and control.pending is not None:
                    return control.pending
                continue
            if data == _DISCONNECTED:
                self._clear_debug(vcpu)
                return None  # the guest runs on
            try:
                reply, action = self._command(vcpu, data.decode("latin-1"))
            except (ValueError, IndexError):
                reply, action = "E01", None
            if reply is not None:
                self._send(reply)
            if action == "continue":
                self._arm(vcpu, step=False)
                self.resumed = True
                return None
            if action == "step":
                self._arm(vcpu, step=True)
                self.resumed = True
                return None
            if action == "detach":
                self._clear_debug(vcpu)
                return None
            if action == "kill":
                return Stop(ExitStatus.GDB_KILLED, "killed by the debugger")

    def _arm(self, vcpu: Vcpu, step: bool) -> None:
        regs = [0] * 8
        control = 0
        for i, addr in enumerate(self.slots):
            if addr is not None:
                regs[i] = addr
                regs[7] |= 1 << (2 * i)
                control = C.KVM_GUESTDBG_ENABLE | C.KVM_GUESTDBG_USE_HW_BP
        if step:
            control |= C.KVM_GUESTDBG_ENABLE | C.KVM_GUESTDBG_SINGLESTEP
            self.stepping.add(vcpu.index)
        vcpu.set_guest_debug(control, regs)

    def _clear_debug(self, vcpu: Vcpu) -> None:
        self.slots = [None] * SLOTS
        self.stepping.clear()
        vcpu.set_guest_debug(0)

    # --- commands ------------------------------------------------------------------------------------
    def _command(self, vcpu: Vcpu, pkt: str) -> tuple[str | None, str | None]:
        target = self.vcpus[self.current] if self.current < len(self.vcpus) else vcpu
        if pkt == "?":
            return f"T{self._last_signal:02x}thread:{vcpu.index + 1:x};", None
        if pkt.startswith("qSupported"):
            return "PacketSize=4000;QStartNoAckMode+", None
        if pkt == "qfThreadInfo":
            return "m" + ",".join(f"{v.index + 1:x}" for v in self.vcpus), None
        if pkt == "qsThreadInfo":
            return "l", None
        if pkt == "qC":
            return f"QC{self.current + 1:x}", None
        if pkt == "qAttached":
            return "1", None
        if pkt[:2] in ("Hg", "Hc"):
            tid = int(pkt[2:], 16) if pkt[2:] not in ("", "-1", "0") else self.current + 1
            if not 1 <= tid <= len(self.vcpus):
                return "E02", None
            if pkt[1] == "g":
                self.current = tid - 1
            return "OK", None
        if pkt.startswith("T"):
            return ("OK" if 1 <= int(pkt[1:], 16) <= len(self.vcpus) else "E02"), None
        if pkt == "g":
            return self._read_registers(target), None
        if pkt.startswith("p"):
            return self._read_registers(target, int(pkt[1:], 16)), None
        if pkt.startswith("P"):
            n, _, value = pkt[1:].partition("=")
            return self._write_register(target, int(n, 16), bytes.fromhex(value)), None
        if pkt.startswith("m"):
            addr, _, length = pkt[1:].partition(",")
            data = self._read_memory(target, int(addr, 16), min(int(length, 16), 0x1000))
            return (data.hex() if data is not None else "E14"), None
        if pkt.startswith("M"):
            head, _, hexdata = pkt[1:].partition(":")
            addr, _, _length = head.partition(",")
            return self._write_memory(target, int(addr, 16), bytes.fromhex(hexdata)), None
        if pkt in ("c", "s") or pkt.startswith(("c", "s")):
            return None, "continue" if pkt[0] == "c" else "step"
        if pkt.startswith(("Z0,", "Z1,", "z0,", "z1,")):
            return self._breakpoint(pkt[0] == "Z", int(pkt[3:].split(",")[0], 16)), None
        if pkt.startswith("qRcmd,"):
            return self._monitor(bytes.fromhex(pkt[6:]).decode("latin-1").strip()), None
        if pkt.startswith("D"):
            return "OK", "detach"
        if pkt == "k" or pkt.startswith("vKill"):
            return ("OK" if pkt.startswith("vKill") else None), "kill"
        return "", None  # not supported: gdb falls back or says so

    def _breakpoint(self, insert: bool, addr: int) -> str:
        if insert:
            if addr in self.slots:
                return "OK"
            for i, s in enumerate(self.slots):
                if s is None:
                    self.slots[i] = addr
                    return "OK"
            return "E28"  # no free debug register
        self.slots = [None if s == addr else s for s in self.slots]
        return "OK"

    def _monitor(self, command: str) -> str:
        if command in ("info exits", "stats", "exits"):
            text = "".join(f"vCPU {v.index}: {v.exits} exits\n" for v in self.vcpus)
        elif command == "help":
            text = "pyvmm monitor commands: info exits\n"
        else:
            text = f"unknown monitor command {command!r}; try 'help'\n"
        return text.encode().hex()

    # --- registers and memory ----------------------------------------------------------------------------
    def _register_values(self, vcpu: Vcpu) -> list[tuple[int, int]]:
        regs, sregs = vcpu.get_regs(), vcpu.get_sregs()
        values = [(int(getattr(regs, n)), 8) for n in GPRS]
        values.append((int(regs.rip), 8))
        values.append((int(regs.rflags), 4))
        values += [(int(getattr(sregs, s).selector), 4) for s in SEGMENTS]
        return values

    def _read_registers(self, vcpu: Vcpu, only: int | None = None) -> str:
        values = self._register_values(vcpu)
        if only is not None:
            if only >= len(values):
                return "E45"
            values = [values[only]]
        return "".join(v.to_bytes(size, "little").hex() for v, size in values)

    def _write_register(self, vcpu: Vcpu, n: int, raw: bytes) -> str:
        value = int.from_bytes(raw, "little")
        regs = vcpu.get_regs()
        names = [*GPRS, "rip", "rflags"]
        if n >= len(names):
            return "E45"
        setattr(regs, names[n], value)
        vcpu.set_regs(regs)
        return "OK"

    def _read_memory(self, vcpu: Vcpu, gva: int, length: int) -> bytes | None:
        out = bytearray()
        while len(out) < length:
            addr = gva + len(out)
            chunk = min(length - len(out), 0x1000 - (addr & 0xFFF))
            gpa = vcpu.translate(addr)
            if gpa is None or not self.memory.contains(gpa, chunk):
                return bytes(out) if out else None
            out += self.memory.read(gpa, chunk)
        return bytes(out)

    def _write_memory(self, vcpu: Vcpu, gva: int, data: bytes) -> str:
        done = 0
        while done < len(data):
            addr = gva + done
            chunk = min(len(data) - done, 0x1000 - (addr & 0xFFF))
            gpa = vcpu.translate(addr)
            if gpa is None or not self.memory.contains(gpa, chunk):
                return "E14"
            self.memory.write(gpa, data[done : done + chunk])
            done += chunk
        return "OK"
