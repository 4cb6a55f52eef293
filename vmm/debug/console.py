"""`MonitorConsole`: a small human monitor, like QEMU's `-monitor stdio` or `-monitor
unix:PATH,server`, and the same commands as a library call (`Machine.monitor_command`).

    info registers [all]   the selected vCPU's registers (or every vCPU's)
    info exits             exits per vCPU
    info spp               every page with an SPP mask
    info cpus              the vCPUs, with their RIP and state; `cpu N` selects one
    x/FMT ADDR             memory by guest-virtual address (through the selected vCPU's page tables)
    xp/FMT ADDR            memory by guest-physical address
                           FMT = [count][x|d|u|c|i][b|h|w|g], as QEMU's (i: instructions);
                           ADDR a number or $reg ($pc, $rip, $rsp, ...)
    stop, cont (c)         hold every vCPU outside KVM_RUN until cont
    system_wakeup          wake a machine suspended to RAM, as QEMU's (a power-button wake)
    system_powerdown       press the ACPI power button (PWRBTN_STS)
    quit (q)               end the run (status 64)
    help

vCPU state can be read only while the vCPU is outside KVM_RUN, by its own thread or while it is
parked. So a command that needs it is handed to a vCPU thread (a kick brings one out at once): that
thread parks the others (the runner's pause), answers, and lets the guest go on, or keeps it held
after `stop` until `cont`. Before and after a run the commands are answered directly.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from vmm.errors import ConfigError, ExitStatus, PyvmmError
from vmm.gdb import registers as R
from vmm.inputs import InputFileError, clear_socket_path
from vmm.runner.participant import Participant, RunContext
from vmm.spp.masks import FULL
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any, Protocol, TextIO

ANSWER_TIMEOUT = 5.0  # seconds a command waits for a vCPU thread to answer it
PROMPT = "(pyvmm) "
HELP = __doc__.split("\n\n")[1] + "\n" if __doc__ else ""
_SIZES = {"b": 1, "h": 2, "w": 4, "g": 8}
_MAX_BYTES = 4096  # one x/xp command shows at most this much


@dataclass
class _Request:
    line: str
    reply: str = ""
    done: threading.Event = field(default_factory=threading.Event)


def parse_monitor_address(spec: str) -> tuple[str, str | None]:
    """-monitor none | stdio | unix:PATH[,server][,nowait|,wait=off]: ("none"|"stdio"|"unix", PATH)."""
    if spec in ("none", "stdio"):
        return spec, None
    if spec.startswith("unix:"):
        path, *opts = spec[5:].split(",")
        bad = [o for o in opts if o not in ("server", "server=on", "nowait", "wait=off")]
        if path and not bad:
            return "unix", path
    raise ConfigError(f"-monitor {spec!r}: use stdio, none or unix:PATH,server,nowait")


if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time

    class PowerButton(Protocol):
        """The pc platform's ACPI power button (vmm.board.sleep.Suspend)."""

        def press_power_button(self) -> None: ...
        def wake_up(self) -> bool: ...


class MonitorConsole(Participant):
    def __init__(
        self,
        vcpus: Sequence[Any],
        memory: Any,
        spp_masks: Callable[[], dict[int, int] | None],
        power_button: PowerButton | None = None,
    ) -> None:
        self.power_button = power_button
        self.vcpus = list(vcpus)
        self.memory = memory
        self.spp_masks = spp_masks
        self.cpu = 0
        self.hold = False  # `stop` given: the guest stays held until `cont`
        self._run: RunContext | None = None
        self._requests: queue.Queue[_Request | None] = queue.Queue()
        self._holder: int | None = None  # the thread ident of the vCPU thread answering for us
        self._lock = threading.Lock()

    # --- the library call ------------------------------------------------------------------
    def execute(self, line: str) -> str:
        words = line.split()
        if not words:
            return ""
        cmd = words[0]
        if cmd in ("help", "?"):
            return HELP
        if cmd in ("q", "quit"):
            if self._run is not None:
                self._run.control.request_stop(Stop(ExitStatus.MONITOR_QUIT, "quit from the monitor"))
            self._wake()
            return ""
        if cmd == "stop":
            self.hold = True
            return self._handed("info cpus") if self._run is not None else "no run is under way\n"
        if cmd in ("c", "cont"):
            self.hold = False
            self._wake()
            return ""
        if cmd in ("system_wakeup", "system_powerdown"):
            # answered here, not by a vCPU thread: while the machine sleeps none is free to answer
            if self.power_button is None:
                return "this machine has no power button (-machine pc has one)\n"
            if cmd == "system_powerdown":
                self.power_button.press_power_button()
                return ""
            return "" if self.power_button.wake_up() else "Unable to wake up: guest is not in suspended state\n"
        if cmd == "info" and words[1:] == ["exits"]:
            return "".join(f"vCPU {v.index}: {v.exits} exits\n" for v in self.vcpus)
        if cmd == "cpu" and len(words) == 2 and words[1].isdigit():
            if int(words[1]) >= len(self.vcpus):
                return f"no vCPU {words[1]} (there are {len(self.vcpus)})\n"
            self.cpu = int(words[1])
            return ""
        return self._handed(line)

    def _handed(self, line: str) -> str:
        run = self._run
        if run is None or threading.get_ident() == self._holder or run.control.current_vcpu() is not None:
            return self.answer(line)
        req = _Request(line)
        self._requests.put(req)
        run.control.kick()
        if not req.done.wait(ANSWER_TIMEOUT):
            return f"no vCPU answered within {ANSWER_TIMEOUT:g} s (is one stopped in the debugger?)\n"
        return req.reply

    def _wake(self) -> None:
        self._requests.put(None)  # a vCPU holding the guest looks at `hold` again

    # --- participant hooks ---------------------------------------------------------------------
    def run_started(self, run: RunContext) -> None:
        self._run = run
        if self.hold:
            run.control.kick()

    def run_ended(self, run: RunContext) -> None:
        self._run = None
        while True:  # whatever is still waiting is answered from the stopped machine
            try:
                req = self._requests.get_nowait()
            except queue.Empty:
                return
            if req is not None:
                req.reply = self.answer(req.line)
                req.done.set()

    def on_kick(self, vcpu: Any) -> Verdict:
        if self._requests.empty() and not self.hold:
            return None
        with self._lock:
            if self._holder is not None:
                return None
            self._holder = threading.get_ident()
        run = self._run
        assert run is not None
        try:
            with run.control.others_paused():
                while True:
                    if run.control.pending is not None:
                        return run.control.pending
                    try:
                        req = self._requests.get(timeout=0.2 if self.hold else 0)
                    except queue.Empty:
                        if self.hold:
                            continue
                        return None
                    if req is not None:
                        req.reply = self.answer(req.line)
                        req.done.set()
        except PyvmmError as e:
            return Stop(ExitStatus.DEBUG_UNSUPPORTED, f"the monitor's pause on vCPU {vcpu.index}: {e}", fatal=True)
        finally:
            self._holder = None

    # --- the answers (vCPUs outside KVM_RUN) --------------------------------------------------------
    def answer(self, line: str) -> str:
        words = line.split()
        try:
            if words[:2] == ["info", "registers"]:
                which = self.vcpus if words[2:] == ["all"] else [self.vcpus[self.cpu]]
                return "".join(registers_text(R.read_state(v), v.index) for v in which)
            if words == ["info", "spp"]:
                return spp_text(self.spp_masks())
            if words == ["info", "cpus"]:
                return "".join(
                    f"{'*' if v.index == self.cpu else ' '} CPU #{v.index}: rip={int(v.get_regs().rip):#x}"
                    f"{' (halted)' if not v.runnable() else ''}\n"
                    for v in self.vcpus
                )
            if words and words[0].split("/")[0] in ("x", "xp") and len(words) == 2:
                head, _, fmt = words[0].partition("/")
                return self._examine(head == "xp", fmt, words[1])
        except (ValueError, IndexError) as e:
            return f"{line!r}: {e}\n"
        except PyvmmError as e:
            return f"{line!r}: {e}\n"
        return f"unknown command {line!r}; try 'help'\n"

    def _address(self, text: str) -> int:
        if text.startswith("$"):
            name = {"pc": "rip"}.get(text[1:], text[1:])
            if name not in R.NUMBER:
                raise ValueError(f"no register {text}")
            return R.REGISTERS[R.NUMBER[name]].get(R.read_state(self.vcpus[self.cpu]))
        return int(text, 0)

    def _examine(self, physical: bool, fmt: str, where: str) -> str:
        digits = "".join(ch for ch in fmt if ch.isdigit())
        letters = fmt[len(digits) :]
        count = int(digits) if digits else 1
        kind = next((ch for ch in letters if ch in "xduci"), "x")
        size = next((_SIZES[ch] for ch in letters if ch in _SIZES), 4)
        if set(letters) - set("xduci") - set(_SIZES):
            raise ValueError(f"format {fmt!r}: use [count][x|d|u|c|i][b|h|w|g]")
        addr = self._address(where)
        want = min(count * (15 if kind == "i" else size), _MAX_BYTES)
        data = self._read(physical, addr, want)
        if data is None:
            return f"cannot read {'physical' if physical else 'virtual'} address {addr:#x}\n"
        if kind == "i":
            cs = self.vcpus[self.cpu].get_sregs().cs
            return disassemble(data, addr, count, 64 if int(cs.l) else 32 if int(cs.db) else 16)
        lines = []
        per_line = max(1, 16 // size)
        for i in range(0, len(data) - size + 1, size * per_line):
            items = []
            for j in range(i, min(i + size * per_line, len(data) - size + 1), size):
                v = int.from_bytes(data[j : j + size], "little")
                if kind == "x":
                    items.append(f"0x{v:0{2 * size}x}")
                elif kind == "d":
                    items.append(str(v - (1 << 8 * size) if v >> (8 * size - 1) else v))
                elif kind == "u":
                    items.append(str(v))
                else:
                    items.append(repr(chr(v & 0xFF)))
            lines.append(f"{addr + i:016x}: " + " ".join(items) + "\n")
        return "".join(lines)

    def _read(self, physical: bool, addr: int, length: int) -> bytes | None:
        out = bytearray()
        vcpu = self.vcpus[self.cpu]
        while len(out) < length:
            at = addr + len(out)
            chunk = min(length - len(out), 0x1000 - (at & 0xFFF))
            gpa = at if physical else vcpu.translate(at)
            if gpa is None or not self.memory.contains(gpa, chunk):
                return bytes(out) if out else None
            out += self.memory.read(gpa, chunk)
        return bytes(out)

    # --- where commands come from -------------------------------------------------------------------
    def _converse(self, lines: Iterable[str], out: TextIO) -> None:
        """A prompt, then for each line read its answer and the next prompt, until the input ends."""
        out.write(PROMPT)
        out.flush()
        for line in lines:
            out.write(self.execute(line.strip()))
            out.write(PROMPT)
            out.flush()

    def serve_stream(self, stdin: TextIO, stdout: TextIO) -> threading.Thread:
        """Read commands from `stdin` (until EOF) on a thread of its own; answers go to `stdout`."""

        def loop() -> None:
            with contextlib.suppress(OSError, ValueError):
                self._converse(stdin, stdout)

        t = threading.Thread(target=loop, name="pyvmm-monitor", daemon=True)
        t.start()
        return t

    def serve_unix(self, path: str) -> socket.socket:
        """Accept one connection at a time on a Unix socket at `path`; a line in, its answer out."""
        try:
            clear_socket_path(path)
        except InputFileError as e:
            raise ConfigError(f"-monitor unix:{path}: '{path}' {e}") from None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(1)
        except OSError as e:
            listener.close()
            raise ConfigError(f"-monitor unix:{path}: cannot listen: {e.strerror}") from None

        def loop() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn, contextlib.suppress(OSError, UnicodeDecodeError):
                    stream = conn.makefile("rw", encoding="utf-8", newline="\n")
                    self._converse(stream, stream)

        threading.Thread(target=loop, name="pyvmm-monitor", daemon=True).start()
        return listener


def registers_text(state: R.State, index: int) -> str:
    get = {r.name: r.get(state) for r in R.REGISTERS}
    s = state.sregs
    cpl = int(s.cs.selector) & 3
    lines = [f"CPU #{index}:\n"]
    names = [*R.GPRS]
    for i in range(0, len(names), 4):
        lines.append(" ".join(f"{n.upper():<3}={get[n]:016x}" for n in names[i : i + 4]) + "\n")
    lines.append(f"RIP={get['rip']:016x} RFL={int(state.regs.rflags):08x} CPL={cpl}\n")
    for name in ("es", "cs", "ss", "ds", "fs", "gs", "tr", "ldt"):
        seg = getattr(s, name)
        lines.append(
            f"{name.upper():<3}={int(seg.selector):04x} {int(seg.base):016x} {int(seg.limit):08x} "
            f"type {int(seg.type):x} dpl {int(seg.dpl)}{' L' if int(seg.l) else ''}\n"
        )
    lines.append(f"GDT=     {int(s.gdt.base):016x} {int(s.gdt.limit):08x}\n")
    lines.append(f"IDT=     {int(s.idt.base):016x} {int(s.idt.limit):08x}\n")
    lines.append(
        f"CR0={get['cr0']:08x} CR2={get['cr2']:016x} CR3={get['cr3']:016x} CR4={get['cr4']:08x} CR8={get['cr8']:x}\n"
    )
    lines.append(
        f"EFER={get['efer']:016x} FS_BASE={get['fs_base']:016x} GS_BASE={get['gs_base']:016x} "
        f"KERNEL_GS_BASE={get['k_gs_base']:016x}\n"
    )
    return "".join(lines)


def spp_text(masks: dict[int, int] | None) -> str:
    if masks is None:
        return "SPP is off\n"
    pages = sorted((p, m) for p, m in masks.items() if m != FULL)
    if not pages:
        return "SPP is on; no page is protected\n"
    return "".join(f"{p:#012x} mask {m:#010x}\n" for p, m in pages)


def disassemble(data: bytes, addr: int, count: int, bits: int) -> str:
    import iced_x86

    decoder = iced_x86.Decoder(bits, data, ip=addr)
    formatter = iced_x86.Formatter(iced_x86.FormatterSyntax.GAS)
    lines: list[str] = []
    for insn in decoder:
        if len(lines) == count or (insn.is_invalid and insn.len == 0):
            break
        raw = data[insn.ip - addr : insn.ip - addr + insn.len].hex(" ")
        lines.append(f"{insn.ip:016x}: {raw:<30} {formatter.format(insn)}\n")
    return "".join(lines)
