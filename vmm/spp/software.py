"""The software SPP engine: sub-page write protection on any stock KVM host.

Protected pages are mapped through read-only memslots (KVM_MEM_READONLY) carved out of the RAM
slots, so reads and instruction fetches run at full speed while every guest write to them comes
back as an MMIO exit carrying address, size and data. Writes whose sub-pages are all allowed are
copied into RAM here; the others go to the policies.

Three things make this exact rather than approximate:
- One guest store can reach us as several MMIO fragments (a 16-byte SSE store arrives as two
  8-byte writes; a store across a page boundary as one fragment per page). After a fragment that
  may have a successor the vCPU re-enters with immediate_exit set (`Vcpu.run_immediate`): KVM
  delivers the next fragment of the same instruction, or nothing. The access is judged whole, so
  a denied fragment drops its allowed siblings too.
- A store that crosses from a writable page into a protected one would have its first part
  written by KVM before we see the second. So when a page's first (or last) sub-page is denied,
  its neighbour page is trapped as well (a "guard": all writes allowed, but seen here first).
- Stores KVM's emulator cannot complete into a read-only slot (movq, fxsave, AVX, ...) end in an
  emulation failure, and a few (sgdt into a protected page, a segment load that must set an
  accessed bit in a protected GDT) make KVM retry forever. For both, the engine makes the pages
  writable and executes the one instruction; what it changed in trapped pages is judged as one
  access, like a fragmented write, and put back unless allowed. A watchdog finds the retrying
  case. Where the instruction cannot be executed either, the run stops with SPP_UNENFORCEABLE:
  never a hang, never a denied write.

The engine talks to its machine through `SppHost` (vmm.spp.host) only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kvm_abi import caps as kcaps
from kvm_abi import constants as kcon
from kvm_abi import exits as ke
from vmm.board.memory import GuestMemory
from vmm.errors import ExitStatus, GuestMemoryError, RunError
from vmm.kvm.exits import DebugExit, InternalErrorExit, IntrExit, MmioExit, ShutdownExit
from vmm.runner.policy import PASS, Pass
from vmm.spp.atomic import AtomicWrites, RedoContext, read_linear
from vmm.spp.controller import Spp
from vmm.spp.decoded import apply_x87, decode_failed_instruction, full_state, physical_fragments, touches_trapped_page
from vmm.spp.event import DENY, InjectRip, SppEvent
from vmm.spp.host import SppHost, SppVcpu
from vmm.spp.masks import FULL, PAGE, MaskTable
from vmm.spp.verdicts import carry_out, inject_exception, unavailable
from vmm.verdict import Stop, Verdict
from vmm.x86 import Fault, Instruction, Unsupported, emulate_store, is_covered

LAST_SUBPAGE = 1 << 31
NO_PROGRESS_LIMIT = 3  # fallback steps at one RIP that end in an exit but leave RIP there
WATCHDOG_PERIOD = 0.05  # seconds without an exit before a vCPU is looked at


class _NotEmulated:
    """emulate_decoded's "take the step path instead"."""


NOT_EMULATED = _NotEmulated()
Fragments = list[tuple[int, bytes]]  # (gpa, bytes) of one access, in the order the guest made them


class SoftwareSpp:
    name = "software"

    def __init__(self, host: SppHost, spp: Spp) -> None:
        self.host = host
        self.spp = spp
        self.table = spp.table
        self.memory = host.memory
        self._ram = [(r.gpa, r.end, r.buffer) for r in self.memory.regions]
        # Without this KVM answers an unemulable store at CPL > 0 by injecting #UD into the guest;
        # we need the exit to deal with the instruction ourselves.
        host.enable_cap(kcaps.KVM_CAP_EXIT_ON_EMULATION_FAILURE, 1)
        for r in self.memory.regions:
            host.mmio.insert(r.gpa, r.size, self.handle_mmio, name="SPP software engine (trapped RAM)")
        host.claim(InternalErrorExit, self.handle_internal_error)
        self._watch: dict[int, tuple[int | None, int]] = {}  # vCPU -> (RIP, exits) at its last watchdog kick
        self._watchdog: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._watchdog_kicked: set[int] = set()  # vCPUs the watchdog kicked, not yet looked at
        self.stepped = 0  # instructions run through the single-step fallback
        self.emulated = 0  # stores KVM could not emulate, carried out from their decoded form
        self._no_progress: dict[int, tuple[int, int]] = {}  # vCPU -> (RIP, steps there without progress)
        self.atomic = AtomicWrites(self.memory)  # every write into a trapped page goes through its lock
        # With one vCPU nothing can write between KVM's read of a locked instruction's operand and
        # its write: KVM's result is always current, and the trapped-write path skips the lock.
        self._alone = len(host.vcpus) == 1
        # The monitor's own writes into trapped pages (devices, ucall results) take the same lock.
        self.memory.trapped_writer = self.monitor_write
        # Allowed sub-pages a lone vCPU stores into go into the MMIO bus's store index, which the
        # run loop writes through itself; any change of the masks empties it.
        self.memory.on_tracking.append(host.mmio.forget_stores)  # a snapshot must see those writes
        # Sub-page number (gpa >> 7) -> its page's mask, for every denied sub-page: the trapped-
        # write path judges a store with one or two lookups, no mask arithmetic (each integer
        # operation costs about as much as a dict lookup, and the path ran thirty of them).
        self._denied: dict[int, int] = {}
        for page in self.table.masks:
            self._mask_changed(page)
        self.table.on_change.append(self._mask_changed)

    # --- slot layout -------------------------------------------------------------------------
    @property
    def trapped(self) -> frozenset[int]:
        return self.host.slots.trapped

    def wanted_trapped(self) -> set[int]:
        """Protected pages plus guard pages beside denied edge sub-pages."""
        pages = set(self.table.masks)
        for p, mask in self.table.masks.items():
            if not mask & 1:
                pages.add(p - PAGE)
            if not mask & LAST_SUBPAGE:
                pages.add(p + PAGE)
        return {p for p in pages if self.memory.contains(p, PAGE)}

    def apply(self, pages: list[int]) -> None:
        self.host.slots.relayout(self.wanted_trapped())

    def _mask_changed(self, page: int) -> None:
        self.host.mmio.forget_stores()
        mask, first, denied = self.table.get(page), page >> 7, self._denied
        for i in range(PAGE >> 7):
            if mask >> i & 1:
                denied.pop(first + i, None)
            else:
                denied[first + i] = mask

    # --- the trapped-write path ------------------------------------------------------------
    def handle_mmio(self, ex: MmioExit) -> Verdict:
        addr, length = ex.address, ex.length
        if not ex.is_write:  # only in the window of a slot update: serve it from RAM
            ex.data = self.memory.read(addr, length)
            return None
        end = addr + length
        if length != 8 and end & 0xFFF:
            # The common case, one fragment inside one page (KVM splits a store at a page end), so
            # in one sub-page or two neighbours: judged by looking both up, an allowed one copied
            # straight from the exit into RAM.
            denied_mask = self._denied.get
            last = (end - 1) >> 7
            mask = denied_mask(addr >> 7)
            if mask is not None:
                denied = addr
            else:
                mask = denied_mask(last)
                denied = last << 7
            if mask is None and self._alone:
                for start, stop, view in self._ram:  # written here, not by a call: every allowed store comes here
                    if start <= addr < stop:
                        view[addr - start : end - start] = ex.data
                        written = self.memory.written
                        if written is not None:  # a snapshot's dirty tracking: record the page
                            written.add(addr & ~0xFFF)
                        elif last == addr >> 7:  # the next stores into this sub-page skip this call too
                            self.host.mmio.store_through(self.handle_mmio, last, view, start)
                        return None
                raise GuestMemoryError(f"trapped write at {addr:#x} is outside guest RAM")
            exiting = ex.vcpu
            index = exiting.index
            atomic = self.atomic
            if mask is None:
                with atomic.lock:
                    frags: Fragments = [(addr, ex.data)]
                    if atomic.seen.get(index, -1) != atomic.generation:
                        # written since this vCPU's last trapped write: KVM's read may be stale
                        frags = atomic.prepare(self.host.vcpu(index), frags)[0]
                    atomic.write(frags)
                    atomic.seen[index] = atomic.generation
                return None
            taken: Fragments | None = None  # what a racing locked instruction really writes
            if self._alone:
                data, redo, look = ex.data, None, False
            else:
                with atomic.lock:
                    taken, redo, look = self._denied_access(self.host.vcpu(index), [(addr, ex.data)])
                data = taken[0][1]
            spp = self.spp
            if not spp.policies and not spp.watchers:  # no one to ask: denied, logged raw
                spp.log_denied((denied, mask, index, exiting.synced_rip(), "software", addr, length, data))
                return None
            event = SppEvent(denied, mask, index, exiting.synced_rip(), "software", addr, length, data)
            verdict = spp.judge(event)
            if verdict is DENY:  # nothing to carry out, the write is simply not applied
                return None
            frags = taken if taken is not None else [(addr, data)]
            pending = _Pending(self, frags, self.host.vcpu(index), redo, look=look, retired=True)
            return carry_out(verdict, event, pending)
        whole: Fragments = [(addr, ex.data)]
        vcpu = self.host.vcpu(ex.vcpu.index)
        self._collect_fragments(vcpu, whole)
        return self.judge_write(whole, vcpu)

    def monitor_write(self, gpa: int, data: bytes | bytearray | memoryview) -> bool:
        """GuestMemory's hook: a write of the monitor's own that touches a trapped page is made
        under the atomic-writes lock as one generation, so a guest's locked instruction there that
        read before it is carried out again after it, as for another vCPU's write. False for
        writes elsewhere (the caller writes them)."""
        trapped = self.trapped
        first, last = gpa & ~(PAGE - 1), gpa + len(data) - 1
        if not trapped or not any(first <= p <= last for p in trapped):
            return False
        if self._alone and self.host.control.current_vcpu() is None:
            # another thread than the one vCPU's: its locked instructions can race this from now on
            self._alone = False
            self.host.mmio.forget_stores()
        with self.atomic.lock:
            if len(data) > PAGE:  # an image or a table: not worth logging byte for byte
                self.memory.write_direct(gpa, data)
                self.atomic.unknown_change()
            else:
                self.atomic.write([(gpa, bytes(data))])
        return True

    def _denied_access(self, vcpu: SppVcpu, frags: Fragments) -> tuple[Fragments, RedoContext | None, bool]:
        """Under the atomic-writes lock: a denied access as it goes to the policies. If another
        vCPU wrote since this one's last trapped write, a locked instruction is carried out again
        on the current value now (its context kept for an Allow); otherwise KVM's result is
        current, and whether the instruction is locked is looked at only if it is allowed (the
        third value), when other vCPUs may have written while the policy ran."""
        atomic = self.atomic
        if atomic.racing(vcpu.index):
            frags, redo = atomic.prepare(vcpu, frags)
            look = False
        else:
            redo, look = None, True
        atomic.seen[vcpu.index] = atomic.generation
        return frags, redo, look

    def commit(
        self,
        index: int,
        frags: Fragments,
        redo: RedoContext | None = None,
        look: bool = False,
        again: Callable[[], Fragments] | None = None,
    ) -> None:
        """Write an access into trapped RAM under the atomic-writes lock; a locked instruction
        (`redo`, or found by looking at the code when `look`: the exit's registers untouched; or a
        decoded one the engine carries out `again`) is carried out again on the memory's value
        at this moment."""
        atomic = self.atomic
        with atomic.lock:
            if again is not None:
                frags = again()
            elif redo is not None:
                frags = atomic.redo_again(self.host.vcpu(index), redo)
            elif look:
                frags = atomic.prepare(self.host.vcpu(index), frags)[0]
            atomic.write(frags)
            atomic.seen[index] = atomic.generation

    def judge_write(self, frags: Fragments, vcpu: SppVcpu) -> Verdict:
        """Apply a whole access if every sub-page it touches is allowed, else ask the policies."""
        # A store that runs off the end of RAM: the part beyond goes to the empty bus, as it would
        # without protection (a device there would not see it: a known limit, see the README).
        outside = [(gpa, data) for gpa, data in frags if not self.memory.contains(gpa, len(data))]
        if outside:
            for gpa, data in outside:
                self.host.note("unhandled-mmio", vcpu=vcpu.index, address=gpa, length=len(data), write=True)
            frags = [f for f in frags if f not in outside]
            if not frags:
                return None
        denied = None
        for gpa, data in frags:
            denied = self.table.first_denied(gpa, len(data))
            if denied is not None:
                break
        atomic = self.atomic
        with atomic.lock:
            if denied is None:
                if atomic.racing(vcpu.index):
                    frags = atomic.prepare(vcpu, frags)[0]
                atomic.write(frags)
                atomic.seen[vcpu.index] = atomic.generation
                return None
            frags, redo, look = self._denied_access(vcpu, frags)
        data = b"".join(d for _, d in frags)
        page_mask = self.table.get(denied & ~(PAGE - 1))
        event = SppEvent(denied, page_mask, vcpu.index, vcpu.synced_rip(), "software", frags[0][0], len(data), data)
        return carry_out(
            self.spp.judge(event), event, _Pending(self, frags, vcpu, redo, look=look, retired=True)
        )

    def rewind_store(self, vcpu: SppVcpu, frags: Fragments) -> bool:
        """Put RIP back on the plain store KVM has just retired (for a fault-like Inject): by the
        store's length where decoding the bytes before RIP gives exactly one instruction writing
        there, and that a store with no effect but RIP. False where it cannot."""
        rip = vcpu.synced_rip()
        if rip is None:
            return False
        with self.atomic.lock:
            length = self.atomic.site(vcpu, rip, frags[0][0], sum(len(d) for _, d in frags)).store_length
        if length is None:
            return False
        vcpu.kvm_run.s.regs.regs.rip = rip - length
        vcpu.kvm_run.kvm_dirty_regs |= kcon.KVM_SYNC_X86_REGS  # KVM loads it at the next KVM_RUN
        return True

    def _collect_fragments(self, vcpu: SppVcpu, frags: Fragments) -> None:
        """Fetch the remaining MMIO fragments of the current instruction (see module docstring)."""
        while True:
            ex = vcpu.run_immediate()
            if isinstance(ex, IntrExit):
                return  # nothing more of this instruction
            if not isinstance(ex, MmioExit) or not ex.is_write:
                raise RunError(f"unexpected exit {ex.name} between the fragments of one write on vCPU {vcpu.index}")
            frags.append((ex.address, ex.data))

    def unprotect_for(self, frags: Fragments, scope: str) -> None:
        def compute(table: MaskTable) -> dict[int, int]:
            new: dict[int, int] = {}
            for gpa, data in frags:
                for pos in range(gpa, gpa + len(data)):
                    page = pos & ~(PAGE - 1)
                    mask = new.get(page, table.get(page))
                    new[page] = FULL if scope == "page" else mask | 1 << ((pos & (PAGE - 1)) // 128)
            return new

        self.spp.update_masks(compute)

    # --- instructions KVM cannot emulate into a read-only slot -------------------------------
    def handle_internal_error(self, ex: InternalErrorExit) -> Verdict | Pass:
        if ex.suberror != ke.KVM_INTERNAL_ERROR_EMULATION or not self.table.masks:
            return PASS
        vcpu = self.host.vcpu(ex.vcpu.index)
        insn = decode_failed_instruction(vcpu, ex.insn_bytes)
        if insn is not None and not touches_trapped_page(vcpu, insn, self.trapped):
            # Not SPP's: KVM lacks this instruction whatever is protected (on this host any
            # CPL-0 code is emulated). It ends as the same plain emulation failure as without SPP.
            return PASS
        if insn is not None and is_covered(insn):
            done = self.emulate_decoded(vcpu, insn)
            if not isinstance(done, _NotEmulated):
                return done
        return self.step_with_pages_writable(vcpu, "KVM could not emulate the instruction", insn)

    def emulate_decoded(self, vcpu: SppVcpu, insn: Instruction) -> Verdict | _NotEmulated:
        """Carry out a store KVM could not emulate from its decoded form and the registers: the
        bytes it writes are judged as one access, like fragmented MMIO writes, and the register
        effects and RIP are applied whatever the verdict (as KVM has done by the time a trapped
        write reaches the engine). NOT_EMULATED where the emulation cannot be exact."""
        state = full_state(vcpu)
        atomic = self.atomic
        # The read (cmpxchg16b compares memory) and the write are one step against every other
        # vCPU's trapped writes.
        with atomic.lock:
            result = emulate_store(insn, state, lambda linear, size: self._read_linear(vcpu, linear, size))
            if isinstance(result, Unsupported):
                return NOT_EMULATED
            if isinstance(result, Fault):  # the CPU would fault before writing: so does the guest
                inject_exception(vcpu, result.vector, result.error_code, 0)
                return None
            frags = physical_fragments(vcpu, result.writes)
            if frags is None or any(not self.memory.contains(gpa, len(data)) for gpa, data in frags):
                return NOT_EMULATED
            first_denied = self.table.first_denied
            denied = next((d for gpa, data in frags if (d := first_denied(gpa, len(data))) is not None), None)
            if denied is None:
                atomic.write(frags)
            atomic.seen[vcpu.index] = atomic.generation
        regs = vcpu.get_regs()
        rip0 = int(regs.rip)
        before = {name: int(getattr(regs, name)) for name in (*result.gprs, "rflags", "rip")}
        for name, value in result.gprs.items():
            setattr(regs, name, value)
        regs.rflags, regs.rip = result.rflags, result.rip
        if result.x87 is not None:
            apply_x87(vcpu, result.x87)
        vcpu.set_regs(regs)
        self.emulated += 1
        if denied is None:
            return None
        data = b"".join(d for _, d in frags)
        event = SppEvent(
            denied, self.table.get(denied & ~(PAGE - 1)), vcpu.index, rip0, "software", frags[0][0], len(data), data,
            insn.mnemonic, insn.bytes, insn.length,
        )  # fmt: skip

        def rewind() -> bool:
            """Put the registers back as they were before the store (not the x87 stack: a
            popping store is not undone)."""
            if result.x87 is not None:
                return False
            now = vcpu.get_regs()
            for name, value in before.items():
                setattr(now, name, value)
            vcpu.set_regs(now)
            return True

        again = None
        if insn.mnemonic == "cmpxchg16b":

            def again() -> Fragments:
                """Under the lock, for an Allow after the policy ran (other vCPUs, or the monitor,
                may have written since): the compare made again against memory now, from the
                registers before the instruction, and its registers applied again."""
                redone = emulate_store(insn, state, lambda linear, size: self._read_linear(vcpu, linear, size))
                if isinstance(redone, (Unsupported, Fault)):
                    return frags  # it succeeded on these pages a moment ago: cannot happen
                writes = physical_fragments(vcpu, redone.writes)
                if writes is None:
                    return frags
                now = vcpu.get_regs()
                for name in {*result.gprs, *redone.gprs}:  # what the first run set, back as this one leaves it
                    setattr(now, name, redone.gprs.get(name, before.get(name, 0)))
                now.rflags = redone.rflags
                vcpu.set_regs(now)
                return writes

        pending = _Pending(self, frags, vcpu, rewind=rewind, again=again)
        return carry_out(self.spp.judge(event), event, pending)

    def _instruction_at_rip(self, vcpu: SppVcpu) -> Instruction | None:
        """The instruction at the vCPU's RIP, decoded from guest memory (up to 15 bytes, fewer
        where the next page is not mapped), or None."""
        regs, sregs = vcpu.get_regs(), vcpu.get_sregs()
        long_mode = bool(int(sregs.efer) & 0x400 and int(sregs.cs.l))
        linear = int(regs.rip) + (0 if long_mode else int(sregs.cs.base))
        pieces = read_linear(vcpu, self.memory, linear, 15)
        if pieces is None:
            pieces = read_linear(vcpu, self.memory, linear, PAGE - (linear & (PAGE - 1)))
        if not pieces:
            return None
        return decode_failed_instruction(vcpu, b"".join(data for _, data in pieces)[:15])

    def _read_linear(self, vcpu: SppVcpu, linear: int, size: int) -> bytes:
        gpa = vcpu.translate(linear)
        if gpa is None or (linear & (PAGE - 1)) + size > PAGE:
            raise LookupError(f"{size} bytes at {linear:#x} are not on one mapped page")
        return self.memory.read(gpa, size)

    def on_kick(self, vcpu: Any) -> Verdict:
        """At every interrupted KVM_RUN: if the watchdog found the vCPU at the same RIP twice with
        no exit in between, KVM is retrying a write it cannot complete: step it ourselves."""
        i = vcpu.index
        if i not in self._watchdog_kicked:
            # another thread's kick (a protection change, a timeout): two of those in a row find
            # the vCPU where they left it without telling anything about its progress
            return None
        self._watchdog_kicked.discard(i)
        last_rip, last_exits = self._watch.get(i, (None, -1))
        rip = vcpu.synced_rip()
        stuck = last_exits == vcpu.exits - 1 and rip is not None and rip == last_rip
        if self.table.masks and stuck and vcpu.runnable():
            self._watch.pop(i, None)
            engine_vcpu = self.host.vcpu(i)
            insn = self._instruction_at_rip(engine_vcpu)
            if insn is not None and is_covered(insn) and touches_trapped_page(engine_vcpu, insn, self.trapped):
                # sgdt/sidt (what KVM retries): carried out from its decoded form, no step
                done = self.emulate_decoded(engine_vcpu, insn)
                if not isinstance(done, _NotEmulated):
                    return done
            return self.step_with_pages_writable(engine_vcpu, "KVM_RUN made no progress at this instruction", insn)
        self._watch[i] = (rip, vcpu.exits)
        return None

    def step_with_pages_writable(self, vcpu: SppVcpu, why: str, insn: Instruction | None = None) -> Verdict:
        rip0 = vcpu.get_regs().rip
        stepped = False
        other = None
        # The other vCPUs must not run while protection is lifted, and the lock keeps another
        # thread's protection change from rebuilding the memslots in the middle of the step.
        with self.host.control.others_paused(), self.spp.lock, vcpu.borrowed_immediate_exit():
            # Whole trapped pages, not just the denied bytes: an instruction writing allowed and
            # denied bytes is one access and is judged whole, as fragmented MMIO writes are.
            trapped = self.trapped
            saved = {(p, p + PAGE): self.memory.read(p, PAGE) for p in trapped}
            self.host.slots.relayout(set())
            try:
                vcpu.clear_stop()  # inside the borrow: a kick that came before is handed on after it
                ex = vcpu.step()
                # A signal before the instruction ran: step again, unless the run is to stop (a
                # timeout, Ctrl-C), which the IntrExit then carries to the run loop below.
                while isinstance(ex, IntrExit) and self.host.control.pending is None:
                    vcpu.clear_stop()
                    ex = vcpu.step()
                # Only a DEBUG exit is a completed step. SHUTDOWN is a triple fault, whatever RIP
                # did: it goes to the run's SHUTDOWN handling below (status 8), never counted
                # as a step.
                stepped = isinstance(ex, DebugExit)
                other = None if stepped or isinstance(ex, InternalErrorExit) else ex
            finally:
                changed = _restore(self.memory, saved)
                self.host.slots.relayout(trapped)
                with self.atomic.lock:
                    # Every trapped byte is as it was before the step (`_restore`; the others were
                    # paused), so the generation passes with nothing logged as changed: an empty
                    # entry, not an unknown one, which would leave every racing adc's carry-in
                    # untold. What the step wrote is judged and committed below, and logged there.
                    self.atomic.write([])
        if isinstance(other, ShutdownExit):
            verdict = self.host.handle(other)
            return verdict if verdict is not None else Stop(ExitStatus.TRIPLE_FAULT, "triple fault", fatal=True)
        if other is not None:  # the instruction completed with an exit of its own (port I/O, ...)
            stepped = True
            verdict = self.host.handle(other)
            if verdict is not None:
                return verdict
            if vcpu.get_regs().rip == rip0:
                # The exit was part of the instruction, not its end. Again and again at the same
                # RIP means the step cannot finish it: fail rather than loop.
                count = self._no_progress.get(vcpu.index, (rip0, 0))
                count = (rip0, count[1] + 1 if count[0] == rip0 else 1)
                self._no_progress[vcpu.index] = count
                if count[1] >= NO_PROGRESS_LIMIT:
                    return Stop(
                        ExitStatus.SPP_STEP_NO_PROGRESS,
                        f"SPP single-step fallback made no progress at rip {rip0:#x} ({count[1]} steps): {why}",
                        fatal=True,
                    )
            else:
                self._no_progress.pop(vcpu.index, None)
        if not stepped:
            return Stop(
                ExitStatus.SPP_UNENFORCEABLE,
                f"SPP cannot be enforced for the instruction at rip {rip0:#x}: {why}, and single-stepping it "
                "failed too (on this host CPL-0 code is itself emulated); no protected byte was changed",
                fatal=True,
            )
        self.stepped += 1
        denied = next((d for gpa, data in changed if (d := self.table.first_denied(gpa, len(data))) is not None), None)
        if denied is None:  # it wrote nothing, or only writable bytes: put those back
            self.commit(vcpu.index, changed)
            return None
        first, new = changed[0][0], b"".join(d for _, d in changed)
        event = SppEvent(
            denied, self.table.get(denied & ~(PAGE - 1)), vcpu.index, rip0, "single-step", first, len(new), new
        )
        if insn is not None:
            event.mnemonic, event.insn_bytes, event.insn_length = insn.mnemonic, insn.bytes, insn.length
        return carry_out(self.spp.judge(event), event, _Pending(self, changed, vcpu))

    # --- the run's hooks: the watchdog ---------------------------------------------------------
    def run_started(self) -> None:
        if self._watchdog is not None:
            return
        self._watch_stop.clear()
        vcpus = list(self.host.vcpus)
        control = self.host.control

        def watch() -> None:
            last = {v.index: -1 for v in vcpus}
            while not self._watch_stop.wait(WATCHDOG_PERIOD):
                for v in vcpus:
                    # a parked vCPU is out of KVM_RUN, so its lack of exits says nothing about KVM
                    if self.table.masks and v.exits == last[v.index] and not control.parked(v):
                        self._watchdog_kicked.add(v.index)
                        control.kick([v])
                    last[v.index] = v.exits
                time.sleep(0)

        self._watchdog = threading.Thread(target=watch, name="pyvmm-spp-watchdog", daemon=True)
        self._watchdog.start()

    def run_ended(self) -> None:
        self._watch_stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None


class _Pending:
    """The software engine's verdict executor: the write has not reached RAM yet, and RIP is past
    the instruction (KVM emulated it, or it was executed with protection lifted). `redo` is set
    for a locked read-modify-write: allowed after the policy ran, it is carried out again on the
    memory's value at that moment, since other vCPUs may have written while the policy ran."""

    def __init__(
        self,
        engine: SoftwareSpp,
        frags: Fragments,
        vcpu: SppVcpu,
        redo: RedoContext | None = None,
        rewind: Callable[[], bool] | None = None,
        look: bool = False,
        retired: bool = False,
        again: Callable[[], Fragments] | None = None,
    ) -> None:
        self.engine = engine
        self.again = again  # a decoded store that reads memory (cmpxchg16b): carried out again when allowed
        self.frags = frags
        self.vcpu = vcpu
        self.redo = redo
        self.look = look
        self.retired = retired  # KVM emulated the store: RIP is past it
        self.rewind = rewind  # puts the vCPU back on the instruction, where that can be done

    def deny(self, event: SppEvent) -> Verdict:
        return None

    def allow(self, event: SppEvent) -> Verdict:
        self.engine.commit(self.vcpu.index, self.frags, self.redo, self.look, self.again)
        return None

    def allow_and_unprotect(self, event: SppEvent, scope: str) -> Verdict:
        self.allow(event)
        self.engine.unprotect_for(self.frags, scope)
        return None

    def write_instead(self, event: SppEvent, data: bytes) -> Verdict:
        self.engine.commit(self.vcpu.index, [(event.write_gpa if event.write_gpa is not None else event.gpa, data)])
        return None

    def inject(self, event: SppEvent, vector: int, error_code: int | None, rip: InjectRip | None) -> Verdict:
        if self.retired:
            rewound = rip == "instruction" and self.engine.rewind_store(self.vcpu, self.frags)
        else:
            rewound = rip == "instruction" and self.rewind is not None and self.rewind()
        if rip == "instruction" and not rewound:
            return unavailable(
                event,
                "Inject(..., rip='instruction') under the software engine needs the instruction's start and "
                "no effect of it but the store; here decoding gives neither for certain",
            )
        # CR2 gets the guest-physical address, which is the virtual one under pyvmm's identity map
        inject_exception(self.vcpu, vector, error_code, event.gpa)
        return None


def _restore(memory: GuestMemory, saved: dict[tuple[int, int], bytes]) -> Fragments:
    """Put back every saved byte; returns the changed runs as (gpa, bytes the guest wrote)."""
    changed: Fragments = []
    for (start, end), old in sorted(saved.items()):
        now = memory.read(start, end - start)
        if now == old:
            continue
        i = 0
        while i < len(old):
            if now[i] == old[i]:
                i += 1
                continue
            j = i
            while j < len(old) and now[j] != old[j]:
                j += 1
            changed.append((start + i, now[i:j]))
            i = j
        memory.write_direct(start, old)
    return changed
