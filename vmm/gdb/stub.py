"""`GdbStub`: a gdb remote stub for one VM, a participant on the runner's hooks.

A server thread accepts one debugger at a time and passes its packets on; the commands run on the
thread of the vCPU that stopped, while every other vCPU is parked outside KVM_RUN by the runner's
pause (`RunControl.others_paused`: immediate_exit and a signal), so gdb's all-stop model holds:
one vCPU stops, all are stopped, and registers of any of them can be read from that thread. A
debugger that connects stops the guest (as QEMU's does); `-S` stops it before its first
instruction; Ctrl-C kicks the vCPUs out of KVM_RUN and the first to come out stops; a debugger
that goes away lets the guest run on.

Breakpoints: `vmm.gdb.breakpoints` (planted int3 where only CPL-0 code can run, debug registers
elsewhere and for Z1). Write watchpoints (Z2): `vmm.debug.watch` on the SPP engine's trapped
pages, at both CPLs. Read and access watchpoints (Z3, Z4) are answered as unsupported: reads are
not trapped here. Registers: `vmm.gdb.registers` (the target description). Memory by guest-virtual
address through the selected vCPU's page tables, or by physical address after `maintenance packet
Qqemu.PhyMemMode:1`, as under QEMU. `monitor` commands: `vmm.gdb.monitor`.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence

from kvm_abi import constants as C
from kvm_abi import exits as ke
from vmm.debug.events import DebugEvent
from vmm.debug.privilege import step_refusal
from vmm.errors import ConfigError, ExitStatus, PyvmmError
from vmm.gdb import registers as R
from vmm.gdb.breakpoints import Breakpoints
from vmm.gdb.monitor import monitor_command
from vmm.gdb.packets import PacketReader, frame
from vmm.inputs import InputFileError, clear_socket_path
from vmm.kvm.exits import DebugExit, InternalErrorExit
from vmm.kvm.vcpu import Vcpu
from vmm.runner.participant import Participant, RunContext
from vmm.runner.policy import PASS, ExitPolicy, Pass
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

SIGINT, SIGTRAP = 2, 5
_DISCONNECTED = b""  # what the inbox carries when the debugger has gone
_PARK_POLL = 0.001  # seconds between looks while another vCPU takes a debugger stop


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


def _address(text: str) -> int:
    addr = int(text, 16)
    if not 0 <= addr < 1 << 64:
        raise ValueError(f"address {text} is not a 64-bit address")
    return addr


class GdbStub(Participant):
    def __init__(
        self,
        vcpus: Sequence[Vcpu],
        policy: ExitPolicy,
        memory: Any,
        address: str,
        *,
        wait: bool,
        watchpoints: Callable[[], Any] | None = None,
        spp_masks: Callable[[], dict[int, int] | None] | None = None,
    ) -> None:
        self.vcpus = list(vcpus)
        self.memory = memory
        kind, where = parse_gdb_address(address)
        try:
            if kind == "tcp":
                self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            else:
                try:
                    clear_socket_path(where)
                except InputFileError as e:
                    raise ConfigError(f"-gdb {address}: '{where}' {e}") from None
                self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
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
        self.stepping: set[int] = set()  # vCPUs armed for one step on the debugger's behalf
        self.step_over: dict[int, tuple[int, bool]] = {}  # vCPU -> (planted gva lifted, then continue)
        self.breakpoints = Breakpoints(memory)
        self.watch_ids: dict[tuple[int, int], int] = {}  # (gva, length) -> watch id
        self._watchpoints = watchpoints
        self._spp_masks = spp_masks
        self.physical = False  # Qqemu.PhyMemMode:1: m/M take guest-physical addresses
        self.current = 0  # the thread (vCPU index) g/G/m/M act on (Hg)
        self.resume_thread: int | None = None  # the thread s/c act on (Hc); None: the stopped one
        self.taker: Vcpu | None = None  # the vCPU that has taken (or is taking) a debugger stop
        self._run: RunContext | None = None
        self._last_stop = f"T{SIGTRAP:02x}thread:1;"
        self._lock = threading.Lock()
        self._take_lock = threading.Lock()
        policy.claim(DebugExit, self._on_debug)
        policy.claim(InternalErrorExit, self._on_emulation_failure)
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
            if self.taker is None:
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
        self._raw(frame(text.encode("latin-1")))

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
            self.taker = self.vcpus[0]  # -S: the boot vCPU reports the first stop
            for v in self.vcpus:
                v.request_stop()  # every first KVM_RUN returns at once: no vCPU runs an instruction

    def on_kick(self, vcpu: Vcpu) -> Verdict:
        if self.stop_wanted and self._take(vcpu):
            self.stop_wanted = False
            return self._stopped(vcpu, f"T{SIGINT if self.resumed else SIGTRAP:02x}")
        self._wait_while_taken(vcpu)
        return None

    def run_ended(self, run: RunContext) -> None:
        self._run = None
        self.breakpoints.clear()  # the guest's memory is left as it was
        outcome = run.control.outcome
        if self.conn is not None and outcome is not None:
            # the guest is gone: tell the debugger its status, as for a process that exited
            self._send(f"W{outcome.stop.status & 0xFF:02x}")

    def _take(self, vcpu: Vcpu) -> bool:
        """Claim the next debugger stop for `vcpu`; False if another vCPU has it."""
        with self._take_lock:
            if self.taker is not None and self.taker is not vcpu:
                return False
            self.taker = vcpu
            return True

    def _wait_while_taken(self, vcpu: Vcpu) -> None:
        """A vCPU that comes out of KVM_RUN while another takes a debugger stop waits, parked,
        until that stop is over: the pause may not have begun yet when it gets here."""
        control = self._run.control if self._run is not None else None
        while control is not None and self.taker is not None and self.taker is not vcpu and control.pending is None:
            control.park_if_asked(vcpu)
            if self.taker is not None and self.taker is not vcpu:
                time.sleep(_PARK_POLL)

    # --- exits the stub takes ---------------------------------------------------------------------
    def _on_debug(self, ex: DebugExit) -> Verdict | Pass:
        vcpu: Vcpu = ex.vcpu  # type: ignore[assignment]
        over = self.step_over.pop(vcpu.index, None)
        if over is not None:
            gva, then_continue = over
            self.breakpoints.replant(gva)
            if then_continue:
                self._arm(vcpu, step=False)
                return None
        stepped = vcpu.index in self.stepping
        self.stepping.discard(vcpu.index)
        if stepped or over is not None:
            return self._stopped_on_event(vcpu, "T05")
        if not self.breakpoints.hit(ex.pc):
            return PASS  # not one of the debugger's breakpoints (an on_breakpoint handler's, say)
        return self._stopped_on_event(vcpu, "T05hwbreak:;", still=lambda: self.breakpoints.hit(ex.pc))

    def _on_emulation_failure(self, ex: InternalErrorExit) -> Verdict | Pass:
        """A planted int3 that CPL-0 code reached: KVM's emulator stops there (host notes)."""
        if ex.suberror != ke.KVM_INTERNAL_ERROR_EMULATION or not self.breakpoints.planted:
            return PASS
        vcpu: Vcpu = ex.vcpu  # type: ignore[assignment]
        rip = int(vcpu.get_regs().rip)
        if not self.breakpoints.planted_at(vcpu, rip):
            return PASS
        return self._stopped_on_event(vcpu, "T05swbreak:;", still=lambda: self.breakpoints.planted_at(vcpu, rip))

    def watch_hit(self, event: DebugEvent) -> Verdict:
        """A write watchpoint's handler: the write is in memory and RIP past the instruction."""
        if self.conn is None:
            return None
        return self._stopped_on_event(event.vcpu, f"T05watch:{event.address:x};")

    def _stopped_on_event(self, vcpu: Vcpu, reply: str, still: Callable[[], bool] | None = None) -> Verdict:
        while not self._take(vcpu):
            self._wait_while_taken(vcpu)  # another vCPU's stop first; then this one is reported
            if self._run is not None and self._run.control.pending is not None:
                return self._run.control.pending
        if still is not None and not still():
            # the debugger removed this breakpoint while the vCPU waited: go on as if never hit
            with self._take_lock:
                self.taker = None
            self._arm(vcpu, step=False)
            return None
        return self._stopped(vcpu, reply)

    # --- the stopped machine ----------------------------------------------------------------------
    def _stopped(self, vcpu: Vcpu, reply: str) -> Verdict:
        """Serve the debugger with every other vCPU parked; `reply` is the stop reply's start."""
        control = self._run.control if self._run is not None else None
        try:
            with control.others_paused() if control is not None else contextlib.nullcontext():
                self.current = vcpu.index
                self.resume_thread = None
                stop = f"{reply}thread:{vcpu.index + 1:x};"
                if self.resumed:
                    self.resumed = False
                    self._send(stop)
                self._last_stop = stop
                return self._serve_stop(vcpu)
        except PyvmmError as e:
            return Stop(ExitStatus.DEBUG_UNSUPPORTED, f"the debugger's stop on vCPU {vcpu.index}: {e}", fatal=True)
        finally:
            with self._take_lock:
                self.taker = None

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
                self._forget()
                return None  # the guest runs on
            try:
                reply, action = self._command(vcpu, data.decode("latin-1"))
            except (ValueError, IndexError, OverflowError, PyvmmError):
                reply, action = "E01", None  # a packet that does not parse, or asks for what cannot be
            if reply is not None:
                self._send(reply)
            if action in ("continue", "step"):
                self._resume(vcpu, action == "step")
                self.resumed = True
                return None
            if action == "detach":
                self._forget()
                return None
            if action == "kill":
                return Stop(ExitStatus.GDB_KILLED, "killed by the debugger")

    def _resume(self, stopped: Vcpu, step: bool) -> None:
        target = self.vcpus[self.resume_thread] if self.resume_thread is not None else stopped
        for v in self.vcpus:
            rip = int(v.get_regs().rip) if v is target else None
            if rip is not None and self.breakpoints.planted_at(v, rip):
                # resuming on a planted int3: run the original instruction alone, then put it back
                self.breakpoints.lift(rip)
                self.step_over[v.index] = (rip, not step)
                self._arm(v, step=True, debugger_step=step)
            else:
                self._arm(v, step=step and v is target)

    def _arm(self, vcpu: Vcpu, step: bool, debugger_step: bool | None = None) -> None:
        control = 0
        regs = self.breakpoints.debugreg()
        if regs[7]:
            control = C.KVM_GUESTDBG_ENABLE | C.KVM_GUESTDBG_USE_HW_BP
        if step:
            control |= C.KVM_GUESTDBG_ENABLE | C.KVM_GUESTDBG_SINGLESTEP
            if debugger_step is None or debugger_step:
                self.stepping.add(vcpu.index)
        vcpu.set_guest_debug(control, regs)

    def _forget(self) -> None:
        """The debugger has gone (or detached): drop its breakpoints and watchpoints."""
        self.breakpoints.clear()
        if self.watch_ids and self._watchpoints is not None:
            watches = self._watchpoints()
            for wid in self.watch_ids.values():
                watches.remove(wid)
        self.watch_ids.clear()
        self.stepping.clear()
        self.step_over.clear()
        for v in self.vcpus:
            v.set_guest_debug(0)

    # --- commands ------------------------------------------------------------------------------------
    def _command(self, vcpu: Vcpu, pkt: str) -> tuple[str | None, str | None]:
        target = self.vcpus[self.current] if self.current < len(self.vcpus) else vcpu
        if pkt == "?":
            return self._last_stop, None
        if pkt.startswith("qSupported"):
            return "PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;swbreak+;hwbreak+", None
        if pkt.startswith("qXfer:features:read:"):
            annex, _, span = pkt[len("qXfer:features:read:") :].rpartition(":")
            offset, _, length = span.partition(",")
            return R.xfer(annex, int(offset, 16), int(length, 16)), None
        if pkt == "qfThreadInfo":
            return "m" + ",".join(f"{v.index + 1:x}" for v in self.vcpus), None
        if pkt == "qsThreadInfo":
            return "l", None
        if pkt == "qC":
            return f"QC{self.current + 1:x}", None
        if pkt == "qAttached":
            return "1", None
        if pkt.startswith("qThreadExtraInfo,"):
            index = int(pkt.split(",")[1], 16) - 1
            return f"vCPU {index}".encode().hex(), None
        if pkt[:2] in ("Hg", "Hc"):
            return self._select(pkt[1], pkt[2:]), None
        if pkt.startswith("T"):
            return ("OK" if 1 <= int(pkt[1:], 16) <= len(self.vcpus) else "E02"), None
        if pkt == "g":
            return R.encode(R.read_state(target)), None
        if pkt.startswith("p"):
            n = int(pkt[1:], 16)
            return (R.encode(R.read_state(target), n) if n < len(R.REGISTERS) else "E45"), None
        if pkt.startswith("P"):
            number, _, value = pkt[1:].partition("=")
            return self._write_register(target, int(number, 16), bytes.fromhex(value)), None
        if pkt.startswith("m"):
            addr, _, length = pkt[1:].partition(",")
            data = self._read_memory(target, _address(addr), min(int(length, 16), 0x1000))
            return (data.hex() if data is not None else "E14"), None
        if pkt.startswith("M"):
            head, _, hexdata = pkt[1:].partition(":")
            addr, _, _length = head.partition(",")
            return self._write_memory(target, _address(addr), bytes.fromhex(hexdata)), None
        if pkt in ("c", "s") or pkt.startswith(("c", "s")):
            if pkt[0] == "s":
                stepped = self.vcpus[self.resume_thread] if self.resume_thread is not None else vcpu
                refusal = self._step_refusal(stepped)
                if refusal is not None:
                    # a step at CPL 3 is not reported to the monitor here: the guest would get the #DB
                    self._send("O" + refusal.encode().hex())
                    return "E01", None
            return None, "continue" if pkt[0] == "c" else "step"
        if pkt[:1] in ("Z", "z") and pkt[1:3] in ("0,", "1,", "2,", "3,", "4,"):
            return self._insert_or_remove(target, pkt), None
        if pkt.startswith("Qqemu.PhyMemMode:"):
            self.physical = pkt.endswith(":1")
            return "OK", None
        if pkt == "qqemu.PhyMemMode":
            return ("1" if self.physical else "0"), None
        if pkt.startswith("qRcmd,"):
            text = monitor_command(bytes.fromhex(pkt[6:]).decode("latin-1").strip(), self)
            return text.encode().hex(), None
        if pkt.startswith("D"):
            return "OK", "detach"
        if pkt == "k" or pkt.startswith("vKill"):
            return ("OK" if pkt.startswith("vKill") else None), "kill"
        return "", None  # not supported: gdb falls back or says so

    def _step_refusal(self, vcpu: Vcpu) -> str | None:
        why = step_refusal(vcpu, self.memory)
        return None if why is None else f"pyvmm: {why}; set a watchpoint, or continue\n"

    def _select(self, which: str, arg: str) -> str:
        if arg in ("", "0", "-1"):
            tid = None
        else:
            tid = int(arg, 16)
            if not 1 <= tid <= len(self.vcpus):
                return "E02"
        if which == "g":
            self.current = tid - 1 if tid is not None else self.current
        else:
            self.resume_thread = tid - 1 if tid is not None else None
        return "OK"

    def _insert_or_remove(self, vcpu: Vcpu, pkt: str) -> str:
        insert, kind = pkt[0] == "Z", pkt[1]
        addr_text, _, rest = pkt[3:].partition(",")
        addr, length = _address(addr_text), int(rest.split(";")[0], 16)
        if kind in "01":
            return self.breakpoints.insert(vcpu, addr, kind == "1") if insert else self.breakpoints.remove(addr)
        if kind in "34" or self._watchpoints is None:
            return ""  # read and access watchpoints: reads are not trapped here (README)
        key = (addr, length)
        watches = self._watchpoints()
        if not insert:
            wid = self.watch_ids.pop(key, None)
            if wid is not None:
                watches.remove(wid)
            return "OK"
        if key in self.watch_ids:
            return "OK"
        self.watch_ids[key] = watches.add(addr, length, "w", self.watch_hit, vcpu.index)
        return "OK"

    # --- registers and memory ----------------------------------------------------------------------------
    def _write_register(self, vcpu: Vcpu, n: int, raw: bytes) -> str:
        if n >= len(R.REGISTERS):
            return "E45"
        state = R.read_state(vcpu)
        part = R.assign(state, n, raw)
        if part is None:
            return "E45"
        R.write_state(vcpu, state, {part})
        return "OK"

    def _physical(self, vcpu: Vcpu, addr: int) -> int | None:
        return addr if self.physical else vcpu.translate(addr)

    def _read_memory(self, vcpu: Vcpu, addr: int, length: int) -> bytes | None:
        out = bytearray()
        while len(out) < length:
            at = addr + len(out)
            chunk = min(length - len(out), 0x1000 - (at & 0xFFF))
            gpa = self._physical(vcpu, at)
            if gpa is None or not self.memory.contains(gpa, chunk):
                return bytes(out) if out else None
            out += self.breakpoints.shadow(gpa, self.memory.read(gpa, chunk))
        return bytes(out)

    def _write_memory(self, vcpu: Vcpu, addr: int, data: bytes) -> str:
        done = 0
        while done < len(data):
            at = addr + done
            chunk = min(len(data) - done, 0x1000 - (at & 0xFFF))
            gpa = self._physical(vcpu, at)
            if gpa is None or not self.memory.contains(gpa, chunk):
                return "E14"
            self.memory.write(gpa, self.breakpoints.write_through(gpa, data[done : done + chunk]))
            done += chunk
        return "OK"
