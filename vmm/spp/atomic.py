"""Locked read-modify-writes on trapped pages, atomic with respect to every other vCPU.

KVM carries out a locked instruction (or `xchg`) on a trapped page by reading the read-only slot
and handing its write to the engine as an MMIO exit, with the instruction retired. Between that
read and the engine's handling of the write another vCPU's write can land, and it would be lost
(4 vCPUs x 3000 `lock add` ended with 6536). The engine is the only writer of trapped pages (the
guest cannot write a read-only slot), so it makes the instructions atomic where it writes:

- Every write the engine makes to a trapped page happens under `lock` and bumps `generation`.
  A vCPU's write exit can have been computed from stale memory only if some write landed since
  that vCPU's own previous trapped write (`racing`): without one, KVM's read saw what the memory
  still holds and its result stands. That is the common case, one integer comparison.
- When a write may be stale, the instruction is identified (`site`): RIP is already past it, so
  the bytes before RIP are decoded at each possible length (1-15) and a candidate counts when it
  ends exactly at RIP and its memory operand is the exit's address. The answer is cached by RIP
  and checked against the code bytes on every use. A locked read-modify-write is carried out
  again on the current value under the lock (`vmm.x86.locked.redo`), its register results put
  into the kvm_run sync-regs area (no ioctl); any other instruction keeps KVM's result, which is
  a legitimate interleaving for a plain store or an unlocked read-modify-write.
- Every such write also logs the bytes it overwrote (`log`, one entry per generation), so the
  values a trapped location held since a vCPU's previous trapped write are known (`held`). KVM
  read one of them. An instruction is kept as the one that wrote only if it explains KVM's exit
  from one of them (vmm.x86.locked.explains); that tells adc's and sbb's carry-in, which KVM's
  result overwrote, and it throws out a longer "locked" reading whose F0 byte really ends the
  instruction before (`f0 44 01 17` read as lock add [rdi], r10d where `01 17`, add [rdi], edx,
  wrote). Where the readings that remain would write different things, nothing tells which is
  true: KVM's result stands and `ambiguous` counts it.

A single lock rather than one per page: the GIL runs one vCPU thread's Python at a time anyway,
so finer locks would buy no parallelism, and one lock makes "anything written since" a single
counter. The lock is never held while a policy runs or while the vCPUs are paused.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from kvm_abi import constants as kc
from vmm.board.memory import GuestMemory
from vmm.spp.decoded import DecodingVcpu
from vmm.x86 import decode, decoding_state
from vmm.x86.decode import Access, Instruction
from vmm.x86.locked import Kind, LockedOp, Redone, classify, explains, redo
from vmm.x86.state import GPR_NAMES

MAX_INSN: Final = 15
PAGE: Final = 4096
_BIT_TESTS: Final = frozenset({Kind.BTS, Kind.BTR, Kind.BTC})
# generations of overwritten bytes kept (a vCPU that wrote longer ago: see `held`). At 1024 a
# vCPU thread descheduled on a loaded host fell behind it while the other three wrote, and its
# `lock adc` kept KVM's stale result; 16384 entries of a few bytes each cover seconds of writes.
LOG: Final = 16384
_CARRIES: Final = (0, 1)
_NO_CARRY: Final = (0,)


Fragments = list[tuple[int, bytes]]  # (gpa, bytes) of one access, in the order the guest made it


@dataclass(frozen=True, slots=True)
class RedoContext:
    """A locked instruction's write exit as KVM gave it: enough to carry it out again."""

    op: LockedOp
    frags: tuple[tuple[int, bytes], ...]
    gprs: dict[str, int]
    rflags: int
    carry: int = 0  # adc's and sbb's carry-in


@dataclass(frozen=True, slots=True)
class Site:
    """What sits just before a RIP: the code's bytes and where they are, the locked operation
    they encode (None: not a locked read-modify-write, or not one to redo), and the length of the
    instruction where it is known to be a store whose only other effect is RIP (so putting RIP
    back by that much undoes it)."""

    code: tuple[tuple[int, bytes], ...]  # (gpa, bytes) pieces, one per page the code is on
    views: tuple[tuple[memoryview, int, bytes], ...]  # the same as (RAM view, offset, bytes), to check them
    op: LockedOp | None  # the longest locked reading that needs no carry: the choice without a log
    store_length: int | None = None  # the length of a plain store with no other effect, if that is what it is
    # every reading that ends at RIP and writes there, longest first: (the locked operation, or
    # None; the read-modify-write it is with or without the prefix, or None for one that is not)
    readings: tuple[tuple[LockedOp | None, LockedOp | None], ...] = ()


class AtomicWrites:
    def __init__(self, memory: GuestMemory) -> None:
        self.memory = memory
        self.lock = threading.Lock()
        self.generation = 0
        self.seen: dict[int, int] = {}  # vCPU -> generation after its last trapped write
        self._sites: dict[int, Site] = {}
        self.redone = 0  # locked instructions carried out again on the current value
        self.lookups = 0  # site decodes (cache misses)
        self.ambiguous = 0  # racing locked writes whose reading (or carry) nothing could tell: KVM's result
        # the bytes each generation's write overwrote, as ((gpa, old bytes), ...); None where a
        # generation changed memory the log cannot say how (the single-step fallback)
        self.log: deque[tuple[tuple[int, bytes], ...] | None] = deque(maxlen=LOG)

    def racing(self, index: int) -> bool:
        """Whether a trapped write landed since vCPU `index`'s previous one (under `lock`)."""
        return self.seen.get(index, -1) != self.generation

    def wrote(self, index: int) -> None:
        """vCPU `index` has written (or been refused) a trapped write (under `lock`)."""
        self.generation += 1
        self.seen[index] = self.generation

    def write(self, frags: Fragments) -> None:
        """Under `lock`: write `frags` into RAM as one generation, logging what they overwrote."""
        view = self.memory.view
        entry = []
        for gpa, data in frags:
            span = view(gpa, len(data))
            entry.append((gpa, bytes(span)))
            span[:] = data
        self.log.append(tuple(entry))
        self.generation += 1

    def unknown_change(self) -> None:
        """Under `lock`: memory may have changed in a way the log cannot tell (a single step)."""
        self.log.append(None)
        self.generation += 1

    def held(self, frags: Fragments, since: int) -> list[int] | None:
        """Under `lock`: the values the bytes of `frags` held from generation `since` until now
        (little-endian ints, newest first, each once per change), or None where the log does not
        reach back that far."""
        back = self.generation - since
        if since < 0 or back > len(self.log):
            return None
        ranges = [(gpa, len(data)) for gpa, data in frags]
        value = bytearray(b"".join(self.memory.read(gpa, n) for gpa, n in ranges))
        out = [int.from_bytes(value, "little")]
        log = self.log
        for k in range(1, back + 1):
            entry = log[-k]
            if entry is None:
                return None
            changed = False
            for wgpa, old in entry:
                pos = 0
                for gpa, n in ranges:
                    lo, hi = max(gpa, wgpa), min(gpa + n, wgpa + len(old))
                    if lo < hi:
                        value[pos + lo - gpa : pos + hi - gpa] = old[lo - wgpa : hi - wgpa]
                        changed = True
                    pos += n
            if changed:
                out.append(int.from_bytes(value, "little"))
        return out

    # --- which instruction wrote ---------------------------------------------------------------
    def site(self, vcpu: DecodingVcpu, rip: int, gpa: int, length: int) -> Site:
        site = self._sites.get(rip)
        if site is not None and all(view[off : off + len(b)] == b for view, off, b in site.views):
            return site
        site = self._find(vcpu, rip, gpa, length)
        self._sites[rip] = site
        return site

    def _find(self, vcpu: DecodingVcpu, rip: int, gpa: int, length: int) -> Site:
        self.lookups += 1
        regs, sregs = vcpu.get_regs(), vcpu.get_sregs()
        state = decoding_state(regs, sregs)
        base = 0 if state.bitness == 64 else int(sregs.cs.base)
        start = max(rip - MAX_INSN, 0)
        pieces = read_linear(vcpu, self.memory, base + start, rip - start)
        if pieces is None and (base + start) // PAGE != (base + rip - 1) // PAGE:
            start = rip - ((base + rip) & (PAGE - 1))  # the page before RIP's is not mapped: RIP's alone
            pieces = read_linear(vcpu, self.memory, base + start, rip - start)
        if not pieces:
            return Site((), (), None)
        code = b"".join(b for _, b in pieces)
        hits: list[tuple[int, Instruction, LockedOp | None, LockedOp | None]] = []
        for n in range(1, len(code) + 1):
            insn = decode(code[len(code) - n :], dataclasses.replace(state, rip=rip - n))
            if insn is None or insn.length != n:
                continue
            op = classify(insn.iced, insn.bitness)
            model = op if op is not None else classify(insn.iced, insn.bitness, locked_only=False)
            if model is not None and model.kind in _BIT_TESTS and model.source is not None:
                # a register bit offset moves the access away from the operand's address
                hit = model.size == length
            else:
                hit = any(
                    m.access is not Access.READ and m.size == length and vcpu.translate(m.linear) == gpa
                    for m in insn.memory
                )
            if hit:
                hits.append((n, insn, op, model))
        # Several lengths can decode to an instruction that ends at RIP and writes there, when
        # the bytes before the real start are prefix values (the end of the instruction before
        # it): `f0 44 01 17` is lock add [rdi], r10d, `44 01 17` the same unlocked, `01 17` add
        # [rdi], edx. All are kept; `choose` keeps those that explain KVM's exit. Without a log
        # to check against, the longest locked one is taken: with REX or segment bytes before it,
        # it is the one a compiler emits. Where the instruction starts is known only when one
        # length fits.
        readings = tuple((op, model) for _, _, op, model in sorted(hits, key=lambda h: -h[0]))
        locked = [op for _, _, op, _ in hits if op is not None and op.size == length and not op.needs_carry]
        op = locked[-1] if locked else None
        store = hits[0][0] if len(hits) == 1 and _pure_store(hits[0][1]) else None
        return Site(tuple(pieces), self._views(pieces), op, store, readings)

    def _views(self, pieces: list[tuple[int, bytes]]) -> tuple[tuple[memoryview, int, bytes], ...]:
        out = []
        for gpa, data in pieces:
            region = next(r for r in self.memory.regions if r.gpa <= gpa and gpa + len(data) <= r.end)
            out.append((region.buffer, gpa - region.gpa, data))
        return tuple(out)

    # --- carrying a locked instruction out again -------------------------------------------------
    def prepare(self, vcpu: Any, frags: Fragments) -> tuple[Fragments, RedoContext | None]:
        """Under `lock`: the access as it is to be judged and written. For a locked
        read-modify-write, the instruction carried out again on the current value (its registers
        already in the sync-regs area) and what is needed to do that again later; anything else
        as KVM gave it."""
        rip = vcpu.synced_rip()
        if rip is None:
            return frags, None
        length = sum(len(d) for _, d in frags)
        site = self.site(vcpu, rip, frags[0][0], length)
        if not any(op is not None and op.size == length for op, _ in site.readings):
            return frags, None
        sync = vcpu.kvm_run.s.regs.regs
        gprs, rflags = {n: int(getattr(sync, n)) for n in GPR_NAMES}, int(sync.rflags)
        chosen = self.choose(site, frags, gprs, rflags, self.seen.get(vcpu.index, -1))
        if chosen is None:
            return frags, None
        context = RedoContext(chosen[0], tuple(frags), gprs, rflags, chosen[1])
        return self.redo_again(vcpu, context), context

    def choose(
        self, site: Site, frags: Fragments, gprs: dict[str, int], rflags: int, since: int
    ) -> tuple[LockedOp, int] | None:
        """Under `lock`: the locked operation (and carry-in) to carry out again, or None for KVM's
        result. A reading counts if it explains KVM's exit from one of the values the memory held
        since generation `since` (KVM read one of those); a reading that is the same operation
        as a locked one, without the prefix, is covered by it (atomic is one of its outcomes); a
        reading that is no read-modify-write `locked.py` models cannot be excluded and stands for
        KVM's result."""
        length = sum(len(d) for _, d in frags)
        held = self.held(frags, since)
        if held is None:  # no log to check against: the longest locked reading, no carry
            if any(op is not None and op.size == length and op.needs_carry for op, _ in site.readings):
                self.ambiguous += 1  # an adc or sbb whose carry-in nothing tells: KVM's result
            return None if site.op is None else (site.op, 0)
        written = int.from_bytes(b"".join(d for _, d in frags), "little")
        mask = (1 << (8 * length)) - 1
        outcomes: set[tuple[LockedOp, int] | None] = set()
        locked_models: set[LockedOp] = set()
        for op, _ in site.readings:
            if op is not None and op.size == length:
                carries = {
                    c
                    for c in (_CARRIES if op.needs_carry else _NO_CARRY)
                    if any(explains(op, v & mask, written, gprs, rflags, c) for v in held)
                }
                outcomes.update((op, c) for c in carries)
                if carries:
                    locked_models.add(op)
        for op, model in site.readings:
            if op is not None and op.size == length:
                continue
            # not a model of ours: it cannot be excluded; else it counts if it explains the exit
            if model is None or model.size != length or (
                model not in locked_models
                and any(
                    explains(model, v & mask, written, gprs, rflags, c)
                    for v in held
                    for c in (_CARRIES if model.needs_carry else _NO_CARRY)
                )
            ):
                outcomes.add(None)
        if len(outcomes) == 1:
            return outcomes.pop()
        if len(outcomes) > 1:
            self.ambiguous += 1
        return None

    def redo_again(self, vcpu: Any, context: RedoContext) -> Fragments:
        """Under `lock`: `context`'s instruction run on the memory's current value, from the
        registers as KVM left them; its registers go into the sync-regs area, the returned
        fragments (KVM's addresses) are its write."""
        frags = context.frags
        current = int.from_bytes(b"".join(self.memory.read(g, len(d)) for g, d in frags), "little")
        written = int.from_bytes(b"".join(d for _, d in frags), "little")
        done: Redone = redo(context.op, current, written, context.gprs, context.rflags, context.carry)
        sync = vcpu.kvm_run.s.regs.regs
        for name, value in done.gprs.items():
            setattr(sync, name, value)
        sync.rflags = done.rflags
        vcpu.kvm_run.kvm_dirty_regs |= kc.KVM_SYNC_X86_REGS  # KVM loads them at the next KVM_RUN
        self.redone += 1
        data = done.write.to_bytes(context.op.size, "little")
        out, pos = [], 0
        for g, d in frags:
            out.append((g, data[pos : pos + len(d)]))
            pos += len(d)
        return out


# Stores whose only effect besides memory is RIP: moving RIP back undoes them.
_PURE_STORES: Final = frozenset({
    "mov", "movnti", "movdqu", "movdqa", "movups", "movaps", "movupd", "movapd", "movntdq", "movntps",
    "movntpd", "movq", "movd", "movss", "movsd", "movhps", "movlps", "movhpd", "movlpd",
})  # fmt: skip


def _pure_store(insn: Instruction) -> bool:
    if insn.iced.is_string_instruction or insn.iced.is_stack_instruction:
        return False
    return insn.mnemonic in _PURE_STORES or (insn.mnemonic.startswith("set") and len(insn.memory) == 1)


def read_linear(vcpu: DecodingVcpu, memory: GuestMemory, linear: int, size: int) -> list[tuple[int, bytes]] | None:
    """The bytes at `linear` as (gpa, bytes) per page, or None where a page is unmapped or not RAM."""
    out: list[tuple[int, bytes]] = []
    while size > 0:
        n = min(size, PAGE - (linear & (PAGE - 1)))
        gpa = vcpu.translate(linear)
        if gpa is None or not memory.contains(gpa, n):
            return None
        out.append((gpa, memory.read(gpa, n)))
        linear += n
        size -= n
    return out
