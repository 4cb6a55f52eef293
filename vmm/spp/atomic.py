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

A single lock rather than one per page: the GIL runs one vCPU thread's Python at a time anyway,
so finer locks would buy no parallelism, and one lock makes "anything written since" a single
counter. The lock is never held while a policy runs or while the vCPUs are paused.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Final

from kvm_abi import constants as kc
from vmm.board.memory import GuestMemory
from vmm.spp.decoded import DecodingVcpu
from vmm.x86 import decode, decoding_state
from vmm.x86.decode import Access, Instruction
from vmm.x86.locked import Kind, LockedOp, Redone, classify, redo
from vmm.x86.state import GPR_NAMES

MAX_INSN: Final = 15
PAGE: Final = 4096
_BIT_TESTS: Final = frozenset({Kind.BTS, Kind.BTR, Kind.BTC})


Fragments = list[tuple[int, bytes]]  # (gpa, bytes) of one access, in the order the guest made it


@dataclass(frozen=True, slots=True)
class RedoContext:
    """A locked instruction's write exit as KVM gave it: enough to carry it out again."""

    op: LockedOp
    frags: tuple[tuple[int, bytes], ...]
    gprs: dict[str, int]
    rflags: int


@dataclass(frozen=True, slots=True)
class Site:
    """What sits just before a RIP: the code's bytes and where they are, the locked operation
    they encode (None: not a locked read-modify-write, or not one to redo), and the length of the
    instruction where it is known to be a store whose only other effect is RIP (so putting RIP
    back by that much undoes it)."""

    code: tuple[tuple[int, bytes], ...]  # (gpa, bytes) pieces, one per page the code is on
    views: tuple[tuple[memoryview, int, bytes], ...]  # the same as (RAM view, offset, bytes), to check them
    op: LockedOp | None
    store_length: int | None = None  # the length of a plain store with no other effect, if that is what it is


class AtomicWrites:
    def __init__(self, memory: GuestMemory) -> None:
        self.memory = memory
        self.lock = threading.Lock()
        self.generation = 0
        self.seen: dict[int, int] = {}  # vCPU -> generation after its last trapped write
        self._sites: dict[int, Site] = {}
        self.redone = 0  # locked instructions carried out again on the current value
        self.lookups = 0  # site decodes (cache misses)

    def racing(self, index: int) -> bool:
        """Whether a trapped write landed since vCPU `index`'s previous one (under `lock`)."""
        return self.seen.get(index, -1) != self.generation

    def wrote(self, index: int) -> None:
        """vCPU `index` has written (or been refused) a trapped write (under `lock`)."""
        self.generation += 1
        self.seen[index] = self.generation

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
        pieces = _read_linear(vcpu, self.memory, base + start, rip - start)
        if pieces is None and (base + start) // PAGE != (base + rip - 1) // PAGE:
            start = rip - ((base + rip) & (PAGE - 1))  # the page before RIP's is not mapped: RIP's alone
            pieces = _read_linear(vcpu, self.memory, base + start, rip - start)
        if not pieces:
            return Site((), (), None)
        code = b"".join(b for _, b in pieces)
        hits: list[tuple[int, Instruction, LockedOp | None]] = []
        for n in range(1, len(code) + 1):
            insn = decode(code[len(code) - n :], dataclasses.replace(state, rip=rip - n))
            if insn is None or insn.length != n:
                continue
            op = classify(insn.iced, insn.bitness)
            if op is not None and op.kind in _BIT_TESTS and op.source is not None:
                # a register bit offset moves the access away from the operand's address
                hit = op.size == length
            else:
                hit = any(
                    m.access is not Access.READ and m.size == length and vcpu.translate(m.linear) == gpa
                    for m in insn.memory
                )
            if hit:
                hits.append((n, insn, op))
        # Several lengths can decode to an instruction that ends at RIP and writes there, when
        # the bytes before the real start are prefix values (the end of the instruction before
        # it). For a locked one (or xchg) everything after the F0 is the same instruction, and
        # with REX or segment bytes before it the longest is the one a compiler emits
        # (`f0 44 01 17`, lock add [rdi], r10d, also ends in `01 17`, add [rdi], edx). An F0 that
        # really ends the instruction before an unlocked one is the case this reads wrongly; an
        # unlocked read-modify-write read as locked is carried out atomically, which is one of
        # its outcomes. Where the instruction starts is known only when one length fits.
        locked = [op for _, _, op in hits if op is not None and op.size == length and op.redone]
        op = locked[-1] if locked else None
        store = hits[0][0] if len(hits) == 1 and _pure_store(hits[0][1]) else None
        return Site(tuple(pieces), self._views(pieces), op, store)

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
        site = self.site(vcpu, rip, frags[0][0], sum(len(d) for _, d in frags))
        if site.op is None:
            return frags, None
        sync = vcpu.kvm_run.s.regs.regs
        context = RedoContext(site.op, tuple(frags), {n: int(getattr(sync, n)) for n in GPR_NAMES}, int(sync.rflags))
        return self.redo_again(vcpu, context), context

    def redo_again(self, vcpu: Any, context: RedoContext) -> Fragments:
        """Under `lock`: `context`'s instruction run on the memory's current value, from the
        registers as KVM left them; its registers go into the sync-regs area, the returned
        fragments (KVM's addresses) are its write."""
        frags = context.frags
        current = int.from_bytes(b"".join(self.memory.read(g, len(d)) for g, d in frags), "little")
        written = int.from_bytes(b"".join(d for _, d in frags), "little")
        done: Redone = redo(context.op, current, written, context.gprs, context.rflags)
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


def _read_linear(vcpu: DecodingVcpu, memory: GuestMemory, linear: int, size: int) -> list[tuple[int, bytes]] | None:
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
