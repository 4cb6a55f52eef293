"""Breakpoints, watchpoints and single steps as Python events, on KVM's guest debugging.

What works on this project's hosts (measured; README, "Host notes: guest debugging"): at CPL 0,
`KVM_GUESTDBG_SINGLESTEP` and `KVM_GUESTDBG_USE_HW_BP` with DR0-DR3 reach the monitor as
`KVM_EXIT_DEBUG`; at CPL 3 neither does (a single step leaks a #DB into the guest, a DR0
breakpoint never fires). So every event here uses the four debug-register slots or KVM's single
step; a step is refused, with a message, when the vCPU is at CPL 3 or on an instruction that may
return to CPL 3 (`vmm.debug.privilege`: such a step would end at CPL 3 unreported, and can leak a
#DB into the guest). Breakpoints in CPL-3 code never fire.

- `on_breakpoint(gva, handler)`: an instruction breakpoint; the handler runs before the
  instruction at `gva` executes; resuming steps over it with the slot disabled for one instruction.
- Watchpoints are not here: data breakpoints in DR0-DR3 fire neither at CPL 0 (KVM's emulator,
  which runs CPL-0 code here, checks only instruction breakpoints) nor at CPL 3. They are built on
  the SPP engine's trapped pages instead (`vmm.debug.watch`).
- `step(handler, vcpu=0)`: the handler runs after the vCPU's next instruction.

A handler gets a `DebugEvent` (the vCPU, its registers from KVM_GET_REGS, the kind and address)
and returns None (resume) or a `Stop`. Registrations take effect before the next run, or at once
on the vCPU whose handler makes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kvm_abi import constants as C
from vmm.debug.privilege import step_refusal
from vmm.errors import ConfigError, ExitStatus
from vmm.kvm.exits import DebugExit, Exit, IntrExit
from vmm.kvm.vcpu import Vcpu
from vmm.runner.participant import Participant, RunContext
from vmm.runner.policy import ExitPolicy
from vmm.verdict import Stop, Verdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

SLOTS = 4
DR6_BS = 1 << 14  # single-step
_RW = {"x": 0b00}  # DR7 R/W bits; the data kinds (01 write, 11 read/write) do not fire here
_LEN = {1: 0b00, 2: 0b01, 4: 0b11, 8: 0b10}
_STEP_LIMIT = 64  # exits one step over a breakpoint may take (an instruction's own I/O, kicks)


@dataclass
class DebugEvent:
    vcpu: Vcpu
    regs: Any  # struct kvm_regs at the event (write it back with vcpu.set_regs to change them)
    kind: str  # "breakpoint", "step" or "watch"
    address: int  # the breakpoint's or watchpoint's address; for a step, the new RIP
    value: bytes | None = None  # a watchpoint: the watched bytes after the write
    write_address: int | None = None  # a watchpoint: guest-virtual start of the write that hit it
    written: bytes | None = None  # a watchpoint: the bytes that write stored

    @property
    def rip(self) -> int:
        return int(self.regs.rip)


DebugHandler = Callable[[DebugEvent], Verdict]


@dataclass
class Slot:
    address: int
    kind: str  # "x": an instruction breakpoint (RW bits 00)
    length: int
    handler: DebugHandler

    def dr7_bits(self, i: int) -> int:
        return (1 << (2 * i)) | (_RW[self.kind] << (16 + 4 * i)) | (_LEN[self.length] << (18 + 4 * i))


def cpl_of(vcpu: Vcpu) -> int:
    return int(vcpu.get_sregs().cs.selector) & 3


class DebugEvents(Participant):
    def __init__(self, vcpus: Sequence[Vcpu], policy: ExitPolicy, memory: Any = None) -> None:
        self.vcpus = list(vcpus)
        self.memory = memory
        self.slots: list[Slot | None] = [None] * SLOTS
        self.steps: dict[int, DebugHandler] = {}
        self._generation = 0
        self._applied: dict[int, int] = {}
        self._run: RunContext | None = None
        self.hits = 0
        policy.claim(DebugExit, self._on_debug)

    # --- registration -----------------------------------------------------------------------
    def on_breakpoint(self, gva: int, handler: DebugHandler) -> int:
        return self._add(Slot(gva, "x", 1, handler))

    def step(self, handler: DebugHandler, vcpu: int = 0) -> None:
        if not 0 <= vcpu < len(self.vcpus):
            raise ConfigError(f"no vCPU {vcpu}")
        why = step_refusal(self.vcpus[vcpu], self.memory) if self.memory is not None else None
        if why is None and cpl_of(self.vcpus[vcpu]) == 3:
            why = f"vCPU {vcpu} is at CPL 3: single-step is not reported to the monitor there on this host"
        if why is not None:
            raise ConfigError(why)
        self.steps[vcpu] = handler
        self._changed()

    def remove(self, slot: int) -> None:
        if not 0 <= slot < SLOTS or self.slots[slot] is None:
            raise ConfigError(f"no breakpoint or watchpoint in slot {slot}")
        self.slots[slot] = None
        self._changed()

    def _add(self, slot: Slot) -> int:
        if not 0 <= slot.address < 1 << 64:
            raise ConfigError(f"address {slot.address:#x} is not a 64-bit address")
        if not callable(slot.handler):
            raise ConfigError(f"debug handler {slot.handler!r} is not callable")
        for i, s in enumerate(self.slots):
            if s is None:
                self.slots[i] = slot
                self._changed()
                return i
        raise ConfigError(f"all {SLOTS} debug-register slots are in use (breakpoints and watchpoints share them)")

    def _changed(self) -> None:
        self._generation += 1
        here = self._current()
        if here is not None:
            self._apply(here)
        if self._run is not None:
            self._run.control.kick([v for v in self.vcpus if v is not here])

    def _current(self) -> Vcpu | None:
        return self._run.control.current_vcpu() if self._run is not None else None

    # --- the debug registers ------------------------------------------------------------------
    def _debugreg(self, skip_exec: bool = False) -> list[int]:
        regs = [0] * 8
        dr7 = 0
        for i, s in enumerate(self.slots):
            if s is not None and not (skip_exec and s.kind == "x"):
                regs[i] = s.address
                dr7 |= s.dr7_bits(i)
        regs[7] = dr7
        return regs

    def _control(self, step: bool) -> int:
        control = 0
        if any(self.slots):
            control |= C.KVM_GUESTDBG_ENABLE | C.KVM_GUESTDBG_USE_HW_BP
        if step:
            control |= C.KVM_GUESTDBG_ENABLE | C.KVM_GUESTDBG_SINGLESTEP
        return control

    def _apply(self, vcpu: Vcpu) -> None:
        vcpu.set_guest_debug(self._control(vcpu.index in self.steps), self._debugreg())
        self._applied[vcpu.index] = self._generation

    # --- participant hooks ----------------------------------------------------------------------
    def run_started(self, run: RunContext) -> None:
        self._run = run
        for v in self.vcpus:
            self._apply(v)

    def on_kick(self, vcpu: Vcpu) -> Verdict:
        if self._applied.get(vcpu.index) != self._generation:
            self._apply(vcpu)
        return None

    def run_ended(self, run: RunContext) -> None:
        self._run = None

    # --- the exit -------------------------------------------------------------------------------
    def _on_debug(self, ex: DebugExit) -> Verdict:
        vcpu: Vcpu = ex.vcpu  # type: ignore[assignment]
        dr6 = ex.dr6
        self.hits += 1
        hit = [i for i in range(SLOTS) if dr6 >> i & 1 and self.slots[i] is not None]
        verdict: Verdict = None
        exec_hit = False
        for i in hit:
            slot = self.slots[i]
            assert slot is not None
            exec_hit = True
            verdict = slot.handler(DebugEvent(vcpu, vcpu.get_regs(), "breakpoint", slot.address))
            if verdict is not None:
                return verdict
        stepped = dr6 & DR6_BS or not hit
        if stepped and vcpu.index in self.steps:
            handler = self.steps.pop(vcpu.index)
            regs = vcpu.get_regs()
            verdict = handler(DebugEvent(vcpu, regs, "step", int(regs.rip)))
            if vcpu.index not in self.steps:
                self._apply(vcpu)
            if verdict is not None:
                return verdict
        elif not hit:
            return Stop(ExitStatus.DEBUG_UNSUPPORTED, f"a debug exit nobody asked for (dr6 {dr6:#x})", fatal=True)
        if exec_hit:
            return self._step_over(vcpu)
        return None

    def _step_over(self, vcpu: Vcpu) -> Verdict:
        """Execute the instruction under an instruction breakpoint, the breakpoint disabled for it."""
        assert self._run is not None
        vcpu.set_guest_debug(self._control(True), self._debugreg(skip_exec=True))
        try:
            for _ in range(_STEP_LIMIT):
                ex: Exit = vcpu.run()
                if isinstance(ex, DebugExit):
                    return None
                verdict = self._run.handle(ex)
                if verdict is not None:
                    return verdict
                if isinstance(ex, IntrExit) and self._run.control.pending is not None:
                    return self._run.control.pending
            return Stop(
                ExitStatus.DEBUG_UNSUPPORTED, f"stepping over the breakpoint on vCPU {vcpu.index} made no progress"
            )
        finally:
            self._apply(vcpu)
