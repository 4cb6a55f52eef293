"""The software SPP engine: sub-page write protection on any stock KVM host.

Protected pages are mapped through read-only memslots (KVM_MEM_READONLY) carved out of the RAM
slots, so reads and instruction fetches run at full speed while every guest write to them comes
back as an MMIO exit carrying address, size and data. Writes whose sub-pages are all allowed are
copied into RAM here; the others go to the policies.

Three things make this exact rather than approximate:
- One guest store can reach us as several MMIO fragments (a 16-byte SSE store arrives as two
  8-byte writes; a store across a page boundary as one fragment per page). After a fragment that
  may have a successor we re-enter KVM_RUN with immediate_exit set: KVM delivers the next fragment
  of the same instruction, or returns EINTR without running the guest when there is none. The
  access is judged whole, so a denied fragment drops its allowed siblings too.
- A store that crosses from a writable page into a protected one would have its first part
  written by KVM before we see the second. So when a page's first (or last) sub-page is denied,
  its neighbour page is trapped as well (a "guard": all writes allowed, but seen here first).
- Stores KVM's emulator cannot complete into a read-only slot (movq, fxsave, AVX, ...) end in an
  emulation failure, and a few (sgdt into a protected page, a segment load that must set an
  accessed bit in a protected GDT) make KVM retry forever. For both, the engine makes the pages
  writable and single-steps the one instruction; what it changed in trapped pages is judged as
  one access, like a fragmented write, and put back unless allowed. A watchdog finds the
  retrying case. Where the host cannot single-step the instruction either, the run stops with
  SPP_UNENFORCEABLE: never a hang, never a denied write.
"""

from __future__ import annotations

import errno
import threading
import time
from typing import TYPE_CHECKING, Any

from kvm_abi import caps as kcaps
from kvm_abi import constants as kc
from kvm_abi import exits as ke
from kvm_abi import ffi, ioctls, libc
from vmm.board.memory import GuestMemory, RamRegion
from vmm.errors import ExitStatus
from vmm.kvm.calls import ioctl, new
from vmm.kvm.exits import DebugExit, InternalErrorExit, IntrExit, MmioExit, ShutdownExit
from vmm.spp.event import DENY, Allow, AllowAndUnprotect, Deny, Inject, SppEvent, StopVm, Verdict, WriteInstead
from vmm.spp.masks import FULL, PAGE, MaskTable, SppError
from vmm.verdict import Stop
from vmm.verdict import Verdict as RunVerdict

if TYPE_CHECKING:
    from vmm.kvm.vcpu import Vcpu
    from vmm.machine import Machine
    from vmm.spp.controller import Spp

LAST_SUBPAGE = 1 << 31
WATCHDOG_PERIOD = 0.05  # seconds without an exit before a vCPU is looked at


class SoftwareSpp:
    name = "software"

    def __init__(self, machine: Machine, spp: Spp) -> None:
        self.machine = machine
        self.spp = spp
        self.table = spp.table
        self.vm = machine.vm
        self.memory = machine.memory
        self.trapped: set[int] = set()  # pages currently behind read-only memslots
        self._regions = list(self.memory.regions)
        self._host_bases = [(r.gpa, r.end, ffi.cast("char *", r.host_addr)) for r in self._regions]
        # Without this KVM answers an unemulable store at CPL > 0 by injecting #UD into the guest;
        # we need the exit to single-step the instruction ourselves.
        if self.vm.check_extension(kcaps.KVM_CAP_EXIT_ON_EMULATION_FAILURE):
            self.vm.enable_cap(kcaps.KVM_CAP_EXIT_ON_EMULATION_FAILURE, 1)
        for r in self._regions:
            machine.on_mmio(r.gpa, r.size, self.handle_mmio)
        self._fallback_internal_error = machine.dispatcher.exit_handler(InternalErrorExit)
        machine.on_exit(InternalErrorExit, self.handle_internal_error)
        machine.kick_hooks.append(self.on_kick)
        self._watch: dict[int, tuple[int | None, int]] = {}  # vCPU -> (RIP, exits) at its last watchdog kick
        self._watchdog: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._watchdog_kicked: set[int] = set()  # vCPUs the watchdog kicked, not yet looked at
        self.stepped = 0  # instructions run through the single-step fallback

    # --- slot layout -------------------------------------------------------------------------
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
        self.relayout(self.wanted_trapped())

    def relayout(self, trapped: set[int]) -> None:
        """Make exactly `trapped` read-only, rebuilding only the memslots whose extent changes."""
        wanted: list[tuple[int, int, int, int]] = []  # gpa, size, host address, flags
        for r in self._regions:
            wanted += _segments(r, trapped)
        current = {(s.gpa, s.size, s.host_addr, s.flags): s.slot for s in self.vm.memslots.values()}
        keep = set(wanted) & set(current)
        stale = [slot for key, slot in current.items() if key not in keep]
        fresh = [seg for seg in wanted if seg not in keep]
        if len(keep) + len(fresh) > self.vm.max_memslots:
            raise SppError(
                f"{len(trapped)} protected pages in {len(wanted)} runs exceed KVM's {self.vm.max_memslots} memslots"
            )
        # Delete before create: KVM refuses overlapping slots. The vCPUs are outside KVM_RUN here;
        # an access that still lands in the gap is served from RAM by handle_mmio.
        for slot in stale:
            self.vm.delete_memslot(slot)
        for gpa, size, host, flags in fresh:
            self.vm.set_memslot(self.vm.free_slot(), gpa, size, host, flags)
        self.trapped = set(trapped)

    # --- the trapped-write path ------------------------------------------------------------
    def handle_mmio(self, ex: MmioExit) -> RunVerdict:
        mmio = ex._mmio
        addr, length = mmio.phys_addr, mmio.len
        if not mmio.is_write:  # only in the window of a slot update: serve it from RAM
            ex.data = self.memory.read(addr, length)
            return None
        if length != 8 and (addr + length) & (PAGE - 1):
            # The common case, one fragment inside one page: judge it with two shifts and copy
            # it straight from the exit into RAM.
            mask = self.table.masks.get(addr & ~(PAGE - 1), FULL)
            first, last = (addr & (PAGE - 1)) >> 7, ((addr + length - 1) & (PAGE - 1)) >> 7
            span = (1 << (last - first + 1)) - 1
            bits = (mask >> first) & span
            if bits == span:
                ffi.memmove(self._host_byte(addr), mmio.data, length)
                return None
            # the lowest clear bit of `bits` is the first denied sub-page the store touches
            sub = first + ((~bits & span) & -(~bits & span)).bit_length() - 1
            denied = max(addr, (addr & ~(PAGE - 1)) + (sub << 7))
            data = bytes(ffi.buffer(mmio.data, length))
            event = SppEvent(denied, mask, ex.vcpu.index, ex.vcpu.synced_rip(), "software", addr, length, data)
            verdict = self.spp.judge(event)
            if verdict is DENY:  # the default: nothing to carry out, the write is simply not applied
                return None
            return self.carry_out(verdict, event, [(addr, data)], ex.vcpu)
        else:
            frags = [(addr, bytes(ffi.buffer(mmio.data, length)))]
            self._collect_fragments(ex.vcpu, frags)
        return self.judge_write(frags, ex.vcpu)

    def _host_byte(self, gpa: int) -> Any:
        for start, end, base in self._host_bases:
            if start <= gpa < end:
                return base + (gpa - start)
        raise SppError(f"trapped write at {gpa:#x} is outside guest RAM")

    def judge_write(self, frags: list[tuple[int, bytes]], vcpu: Vcpu) -> RunVerdict:
        """Apply a whole access if every sub-page it touches is allowed, else ask the policies."""
        # A store that runs off the end of RAM: the part beyond goes to the empty bus, as it would
        # without protection (a device there would not see it: a known limit, see the README).
        outside = [(gpa, data) for gpa, data in frags if not self.memory.contains(gpa, len(data))]
        if outside:
            if self.machine.trace is not None:
                for gpa, data in outside:
                    self.machine.trace.note("unhandled-mmio", address=gpa, length=len(data), write=True)
            frags = [f for f in frags if f not in outside]
            if not frags:
                return None
        denied = None
        for gpa, data in frags:
            denied = self.table.first_denied(gpa, len(data))
            if denied is not None:
                break
        if denied is None:
            for gpa, data in frags:
                self.memory.write(gpa, data)
            return None
        data = b"".join(d for _, d in frags)
        event = SppEvent(
            denied,
            self.table.get(denied & ~(PAGE - 1)),
            vcpu.index,
            vcpu.synced_rip(),
            "software",
            frags[0][0],
            len(data),
            data,
        )
        return self.carry_out(self.spp.judge(event), event, frags, vcpu)

    def _collect_fragments(self, vcpu: Vcpu, frags: list[tuple[int, bytes]]) -> None:
        """Fetch the remaining MMIO fragments of the current instruction (see module docstring)."""
        run = vcpu.kvm_run
        mmio = run.mmio
        # immediate_exit may already carry someone's stop request (a timeout, a pause, a protection
        # change from another thread); borrowing it here must not erase that request.
        kicks = vcpu.kicks
        kicked = bool(run.immediate_exit)
        run.immediate_exit = 1
        try:
            while True:
                rc = libc.ioctl(vcpu.fd, ioctls.KVM_RUN, ffi.NULL)
                if rc < 0:
                    if ffi.errno == errno.EINTR:
                        return
                    raise SppError(f"KVM_RUN while collecting a write's fragments failed (errno {ffi.errno})")
                if run.exit_reason != ke.KVM_EXIT_MMIO or not mmio.is_write:
                    raise SppError(f"unexpected exit {run.exit_reason} between the fragments of one write")
                frags.append((int(mmio.phys_addr), bytes(ffi.buffer(mmio.data, mmio.len))))
        finally:
            vcpu.restore_stop(kicks, keep=kicked or self._stop_requested())

    def _stop_requested(self) -> bool:
        """Whether the run loop has been asked to come out of KVM_RUN since the last exit: a stop
        (timeout, Ctrl-C) or a protection change waiting for the vCPU thread."""
        return self.machine.stop_requested() or self.spp.has_pending()

    def carry_out(self, verdict: Verdict, event: SppEvent, frags: list[tuple[int, bytes]], vcpu: Vcpu) -> RunVerdict:
        """Do what the policy decided with a write that has not reached RAM yet."""
        if isinstance(verdict, Deny):
            return None
        if isinstance(verdict, Allow):
            for gpa, data in frags:
                self.memory.write(gpa, data)
            return None
        if isinstance(verdict, AllowAndUnprotect):
            for gpa, data in frags:
                self.memory.write(gpa, data)
            self.unprotect_for(frags, verdict.scope)
            return None
        if isinstance(verdict, WriteInstead):
            start = event.write_gpa if event.write_gpa is not None else event.gpa
            self.memory.write(start, verdict.data)
            return None
        if isinstance(verdict, StopVm):
            return Stop(ExitStatus.SPP_STOP, f"{verdict.reason}: {event.describe()}")
        if isinstance(verdict, Inject):
            inject_exception(vcpu, verdict, event.gpa)
            return None
        raise SppError(f"SPP policy returned {verdict!r}, which is not a verdict")

    def unprotect_for(self, frags: list[tuple[int, bytes]], scope: str) -> None:
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
    def handle_internal_error(self, ex: InternalErrorExit) -> RunVerdict:
        if ex.suberror != ke.KVM_INTERNAL_ERROR_EMULATION or not self.table.masks:
            return self._fallback_internal_error(ex) if self._fallback_internal_error else None
        return self.step_with_pages_writable(ex.vcpu, "KVM could not emulate the instruction")

    def on_kick(self, vcpu: Vcpu) -> RunVerdict:
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
        if (
            self.table.masks
            and last_exits == vcpu.exits - 1
            and rip is not None
            and rip == last_rip
            and _runnable(vcpu)
        ):
            self._watch.pop(i, None)
            return self.step_with_pages_writable(vcpu, "KVM_RUN made no progress at this instruction")
        self._watch[i] = (rip, vcpu.exits)
        return None

    def step_with_pages_writable(self, vcpu: Vcpu, why: str) -> RunVerdict:
        rip0 = vcpu.get_regs().rip
        stepped = False
        other = None
        kicks = vcpu.kicks
        kicked = bool(vcpu.kvm_run.immediate_exit)  # a stop request made before the step
        # The other vCPUs must not run while protection is lifted, and the lock keeps another
        # thread's protection change from rebuilding the memslots in the middle of the step.
        with self.machine.control.others_paused(), self.spp.lock:
            # Whole trapped pages, not just the denied bytes: an instruction writing allowed and
            # denied bytes is one access and is judged whole, as fragmented MMIO writes are.
            saved = {(p, p + PAGE): self.memory.read(p, PAGE) for p in self.trapped}
            trapped = set(self.trapped)
            self.relayout(set())
            try:
                vcpu.set_guest_debug(kc.KVM_GUESTDBG_ENABLE | kc.KVM_GUESTDBG_SINGLESTEP)
                vcpu.clear_stop()
                ex = vcpu.run()
                # A signal before the instruction ran: step again, unless the run is to stop (a
                # timeout, Ctrl-C), which the IntrExit then carries to the run loop below.
                while isinstance(ex, IntrExit) and not self.machine.stop_requested():
                    kicked = True
                    vcpu.clear_stop()
                    ex = vcpu.run()
                # This host reports the end of a single-stepped CPL-3 instruction as SHUTDOWN
                # rather than DEBUG; the vCPU is intact and RIP has moved on. A real triple fault
                # leaves RIP.
                stepped = isinstance(ex, DebugExit) or (isinstance(ex, ShutdownExit) and vcpu.get_regs().rip != rip0)
                other = None if stepped or isinstance(ex, InternalErrorExit) else ex
            finally:
                vcpu.set_guest_debug(0)
                changed = _restore(self.memory, saved)
                self.relayout(trapped)
                vcpu.restore_stop(kicks, keep=kicked or self._stop_requested())  # hand requests on
        if other is not None:  # the instruction completed with an exit of its own (port I/O, ...)
            stepped = True
            verdict = self.machine.dispatcher.dispatch(other)
            if verdict is not None:
                return verdict
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
            for gpa, data in changed:
                self.memory.write(gpa, data)
            return None
        first, new = changed[0][0], b"".join(d for _, d in changed)
        event = SppEvent(
            denied, self.table.get(denied & ~(PAGE - 1)), vcpu.index, rip0, "single-step", first, len(new), new
        )
        return self.carry_out(self.spp.judge(event), event, changed, vcpu)

    # --- watchdog ----------------------------------------------------------------------------
    def start_watchdog(self) -> None:
        if self._watchdog is not None:
            return
        self._watch_stop.clear()
        vcpus = self.machine.vcpus
        control = self.machine.control

        def watch() -> None:
            last = [-1] * len(vcpus)
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

    def stop_watchdog(self) -> None:
        self._watch_stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None


def _segments(region: RamRegion, trapped: set[int]) -> list[tuple[int, int, int, int]]:
    """Split `region` into maximal runs of equally trapped pages: (gpa, size, host address, flags)."""
    out: list[tuple[int, int, int, int]] = []
    start = region.gpa
    ro = start in trapped
    for page in range(region.gpa + PAGE, region.end + PAGE, PAGE):
        page_ro = page in trapped if page < region.end else not ro
        if page_ro != ro or page >= region.end:
            host = region.host_addr + (start - region.gpa)
            out.append((start, page - start, host, kc.KVM_MEM_READONLY if ro else 0))
            start, ro = page, page_ro
    return out


def _restore(memory: GuestMemory, saved: dict[tuple[int, int], bytes]) -> list[tuple[int, bytes]]:
    """Put back every saved byte; returns the changed runs as (gpa, bytes the guest wrote)."""
    changed: list[tuple[int, bytes]] = []
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
        memory.write(start, old)
    return changed


def _runnable(vcpu: Vcpu) -> bool:
    """Whether the vCPU is executing instructions. A halted vCPU, or an AP waiting for INIT/SIPI,
    stays in KVM_RUN without exits at one RIP by design (with the in-kernel irqchip): that is not
    KVM retrying a write, and a single-step of it would wait in KVM_RUN for as long as it sleeps."""
    state = new("struct kvm_mp_state *")
    ioctl(vcpu.fd, ioctls.KVM_GET_MP_STATE, state, "KVM_GET_MP_STATE")
    return bool(state.mp_state == kc.KVM_MP_STATE_RUNNABLE)


def inject_exception(vcpu: Vcpu, verdict: Inject, gpa: int) -> None:
    """Raise `verdict.vector` in the guest. For #PF, CR2 gets the address (the guest-physical
    address, which is the virtual one under pyvmm's identity map)."""
    if verdict.vector == 14:
        sregs = vcpu.get_sregs()
        sregs.cr2 = gpa
        vcpu.set_sregs(sregs)
    ev = vcpu.get_vcpu_events()
    ev.exception.injected = 1
    ev.exception.nr = verdict.vector
    ev.exception.has_error_code = 1 if verdict.error_code is not None else 0
    ev.exception.error_code = verdict.error_code or 0
    ev.flags = 0
    vcpu.set_vcpu_events(ev)
