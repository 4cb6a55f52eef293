"""`Vcpu`: one vCPU file descriptor, its shared `kvm_run` page, and every call made on it.

This class is the only code in pyvmm that enters KVM_RUN or issues a vCPU ioctl. Its run
contract, which every caller relies on:

- `run()` returns the typed view of the exit. A signal (EINTR) or KVM's EAGAIN comes back as an
  `IntrExit`; `-EFAULT` with `KVM_EXIT_MEMORY_FAULT` as a `MemoryFaultExit`; any other failure
  raises `KvmCallFailed` naming the vCPU.
- `run_immediate()` enters with `immediate_exit` set, so KVM completes what it has pending for the
  current instruction (the next MMIO fragment of one store, the write half of a read-modify-write)
  without running a new guest instruction: an `IntrExit` says there was nothing left.
- `borrowed_immediate_exit()` is the one place that borrows the flag: a kick that raced with the
  borrower (a stop, a pause, a protection change from another thread) survives it.
- `step()` runs exactly one guest instruction by KVM's single-step, where the host supports it.
- `request_stop()` is the kick: async-signal-safe, one byte store plus a counter.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from kvm_abi import constants, ffi, ioctls, libc
from kvm_abi import exits as ke
from vmm.errors import KvmCallFailed, KvmSetupError
from vmm.kvm.calls import NULL, cast, ioctl, new
from vmm.kvm.exits import Exit, make_run, make_serve, make_view

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    import signal
    from typing import Any

    from vmm.kvm.exits import ExitRoutes, R
else:  # signal.py's C half: the same calls, without the enums signal.py builds at import
    import _signal as signal

_VIEW_TABLE_SIZE = 64  # exit reasons below this get a preallocated view
RING_ENTRY = 16  # struct kvm_dirty_gfn: u32 flags, u32 slot (address space << 16 | id), u64 page offset
_MAX_MSRS = 1024  # more MSRs than KVM lists as saveable on any host seen


class Vcpu:
    def __init__(self, fd: int, index: int, mmap_size: int, *, sync_regs: bool, xsave_size: int = 0) -> None:
        self.fd = fd
        self.index = index
        ptr = libc.mmap(NULL, mmap_size, constants.PROT_READ | constants.PROT_WRITE, constants.MAP_SHARED, fd, 0)
        if int(ffi.cast("uintptr_t", ptr)) == constants.MAP_FAILED:
            os.close(fd)
            raise KvmSetupError(f"cannot map the kvm_run page of vCPU {index} (errno {ffi.errno})")
        self._run_ptr = ptr
        self._run_size = mmap_size
        self.kvm_run: Any = cast("struct kvm_run *", ptr)
        # RIP on every exit without an ioctl: ask KVM to mirror the GPRs into kvm_run.
        self.sync_regs = sync_regs
        if sync_regs:
            self.kvm_run.kvm_valid_regs = constants.KVM_SYNC_X86_REGS
        self._sync_gprs = self.kvm_run.s.regs.regs
        # RIP as one word of a memoryview: read at every SPP event, and a cffi field read costs
        # several times a memoryview index
        rip_bytes = ffi.buffer(ffi.addressof(self._sync_gprs, "rip"), 8)
        self._rip: Any = memoryview(rip_bytes).cast("Q") if sync_regs else None
        self._views: list[Exit] = [make_view(self, self.kvm_run, r) for r in range(_VIEW_TABLE_SIZE)]
        self._intr = self._views[ke.KVM_EXIT_INTR]
        self.kick_signal: int | None = None  # the signal that kicks this vCPU out of KVM_RUN
        self._guest_debug = 0  # the KVM_SET_GUEST_DEBUG control last set
        self._debugreg: list[int] = []
        self.exits = 0
        self.kicks = 0
        self._raw: dict[str, Any] = {}  # one reusable struct per RAW_STATE kind
        self._raw_calls = {kind: (get, put) for kind, (_, get, put) in RAW_STATE.items()}
        # `xsave_size`: KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on the VM, 0 without the capability.
        # With it, the area is read with KVM_GET_XSAVE2, which copies that many bytes (the 4 KiB
        # struct kvm_xsave cuts off state past 4 KiB), and KVM_SET_XSAVE takes as many back.
        self.xsave_size = xsave_size or ffi.sizeof("struct kvm_xsave")
        if xsave_size:
            self._raw["xsave"] = new("uint8_t[]", xsave_size)
            self._raw_calls["xsave"] = (ioctls.KVM_GET_XSAVE2, ioctls.KVM_SET_XSAVE)
        self._msr_sets: dict[int, Any] = {}
        self._ring_entries = 0  # the dirty ring (map_dirty_ring), 0 without one
        self._ring_next = 0  # the next entry to look at: KVM fills them in order
        self.run: Callable[[], Exit] = self._make_run()

    def close(self) -> None:
        if self.fd >= 0:
            if self._ring_entries:
                libc.munmap(self._ring_ptr, self._ring_entries * RING_ENTRY)
            libc.munmap(self._run_ptr, self._run_size)
            os.close(self.fd)
            self.fd = -1
            self.run = self._closed

    def _closed(self) -> Exit:
        raise KvmCallFailed(f"KVM_RUN on vCPU {self.index}", errno.EBADF)

    # --- running -------------------------------------------------------------------------
    def _make_run(self) -> Callable[[], Exit]:
        """`run()`: one KVM_RUN; the typed view of the exit (see the module docstring for the
        contract), built by `vmm.kvm.exits.make_run` around this vCPU's KVM_RUN. IO and MMIO exits
        come back decoded (as kvm-ioctls' VcpuExit::IoOut carries its port and data): every one of
        them is read."""
        enter = partial(libc.ioctl, self.fd, ioctls.KVM_RUN, NULL)  # called in C: no Python frame
        return make_run(self, self.kvm_run, self._views, enter, self._failed_run)

    def serve(self, handle: Callable[[Exit], R | None], routes: ExitRoutes[R]) -> R:
        """Run until an exit's handler returns something other than None, and return that: each
        exit as `run()` returns it, handed to `handle` or to its bus's route in `routes`
        (`vmm.kvm.exits.ExitRoutes`). A vCPU thread's run loop (`vmm.runner.runner`), here so that
        a port exit costs one call (its device's handler), not also a `run()` call, its return and
        the router's call."""
        enter = partial(libc.ioctl, self.fd, ioctls.KVM_RUN, NULL)
        return make_serve(self, self.kvm_run, self._views, enter, self._failed_run, handle, routes)()

    def _failed_run(self) -> Exit:
        err = ffi.errno
        self.exits += 1
        if err in (errno.EINTR, errno.EAGAIN):
            if err == errno.EINTR and self.kick_signal is not None:
                # the kick is blocked outside KVM_RUN and let through inside it: take it off the
                # thread's pending set, or the next KVM_RUN would return at once again
                signal.sigtimedwait({self.kick_signal}, 0)
            # KVM leaves exit_reason stale on EAGAIN and on an immediate exit: say what happened
            self.kvm_run.exit_reason = ke.KVM_EXIT_INTR
            return self._intr
        if err == errno.EFAULT and self.kvm_run.exit_reason == ke.KVM_EXIT_MEMORY_FAULT:
            return self._views[ke.KVM_EXIT_MEMORY_FAULT]
        self.exits -= 1
        raise KvmCallFailed(f"KVM_RUN on vCPU {self.index}", err)

    def run_immediate(self) -> Exit:
        """One KVM_RUN that runs no new guest instruction: the rest of the current one, if KVM
        has any of it pending, else an `IntrExit`."""
        with self.borrowed_immediate_exit():
            return self.run()

    @contextmanager
    def borrowed_immediate_exit(self) -> Iterator[None]:
        """Set immediate_exit for the body. A stop request that was pending before, or arrives
        during the body, stays pending afterwards: cleared first and checked after, so a kick
        racing with the restore survives too."""
        run = self.kvm_run
        kicks = self.kicks
        was_set = bool(run.immediate_exit)
        run.immediate_exit = 1
        try:
            yield
        finally:
            run.immediate_exit = 0
            if was_set or self.kicks != kicks:
                run.immediate_exit = 1

    def request_stop(self) -> None:
        """Make the current or next KVM_RUN return at once (async-signal-safe: one byte store).
        `kicks` counts requests, so code that borrows immediate_exit can tell one arrived."""
        self.kicks += 1
        self.kvm_run.immediate_exit = 1

    def clear_stop(self) -> None:
        self.kvm_run.immediate_exit = 0

    @property
    def stop_pending(self) -> bool:
        return bool(self.kvm_run.immediate_exit)

    def step(self) -> Exit:
        """Run one guest instruction with KVM's single-step and return the exit that ends it: a
        `DebugExit` when the host reports the step, or whatever exit the instruction caused.
        The guest-debug state from before is put back. Pending kicks are left pending: an
        `IntrExit` means the step did not start."""
        control, debugreg = self._guest_debug, list(self._debugreg)
        self.set_guest_debug(control | constants.KVM_GUESTDBG_ENABLE | constants.KVM_GUESTDBG_SINGLESTEP, debugreg)
        try:
            return self.run()
        finally:
            self.set_guest_debug(control, debugreg)

    def set_signal_mask(self, blocked: set[int], *, kick: int | None = None) -> None:
        """KVM_SET_SIGNAL_MASK: the signals blocked while this vCPU is inside KVM_RUN (the
        thread's own mask applies everywhere else). `kick` names the signal that interrupts
        KVM_RUN and is otherwise blocked: `run()` consumes it when it returns EINTR."""
        bits = 0
        for sig in blocked:
            bits |= 1 << (int(sig) - 1)
        # the kernel's sigset_t is 64 bits on x86-64: `len` is 8 and the bits follow it
        mask = new("struct kvm_signal_mask *", {"len": 8, "sigset": 8})
        for i, b in enumerate(bits.to_bytes(8, "little")):
            mask.sigset[i] = b
        self._set(ioctls.KVM_SET_SIGNAL_MASK, mask, "KVM_SET_SIGNAL_MASK")
        self.kick_signal = kick

    def view(self, reason: int) -> Exit:
        """The exit view `run()` returns for `reason` (one per reason, reused)."""
        return self._views[reason] if reason < _VIEW_TABLE_SIZE else make_view(self, self.kvm_run, reason)

    def synced_rip(self) -> int | None:
        rip = self._rip
        return rip[0] if rip is not None else None

    @property
    def sync_gprs(self) -> Any:
        """The general registers KVM writes into the kvm_run page at every exit (`.rip`, `.rax`
        ...), or None without sync regs: for observers that read RIP at every exit."""
        return self._sync_gprs if self.sync_regs else None

    # --- the dirty ring ------------------------------------------------------------------
    def map_dirty_ring(self, entries: int) -> None:
        """Map this vCPU's dirty ring (the VM enabled KVM_CAP_DIRTY_LOG_RING with `entries`)."""
        size = entries * RING_ENTRY
        prot = constants.PROT_READ | constants.PROT_WRITE
        ptr = libc.mmap(NULL, size, prot, constants.MAP_SHARED, self.fd, constants.KVM_DIRTY_LOG_PAGE_OFFSET * 4096)
        if int(ffi.cast("uintptr_t", ptr)) == constants.MAP_FAILED:
            raise KvmSetupError(f"cannot map the dirty ring of vCPU {self.index} (errno {ffi.errno})")
        self._ring_ptr = ptr
        self._ring32 = cast("uint32_t *", ptr)
        self._ring64 = cast("uint64_t *", ptr)
        self._ring_entries = entries

    def harvest_dirty_ring(self) -> list[tuple[int, int]]:
        """(slot, page offset in the slot) of each page KVM logged since the last harvest; the
        entries are marked harvested, for the VM's KVM_RESET_DIRTY_RINGS to recycle. KVM
        publishes an entry by setting its DIRTY flag last (a release store; x86 keeps the order)."""
        ring32, ring64, mask = self._ring32, self._ring64, self._ring_entries - 1
        dirty, harvested = constants.KVM_DIRTY_GFN_F_DIRTY, constants.KVM_DIRTY_GFN_F_RESET
        out = []
        i = self._ring_next
        while True:
            e = i & mask
            if not ring32[4 * e] & dirty:
                break
            out.append((int(ring32[4 * e + 1]), int(ring64[2 * e + 1])))
            ring32[4 * e] = harvested
            i += 1
        self._ring_next = i
        return out

    # --- registers -----------------------------------------------------------------------
    def _get(self, ctype: str, request: int, name: str) -> Any:
        obj = new(ctype)
        ioctl(self.fd, request, obj, f"{name} on vCPU {self.index}")
        return obj

    def _set(self, request: int, obj: Any, name: str) -> None:
        ioctl(self.fd, request, obj, f"{name} on vCPU {self.index}")

    def get_regs(self) -> Any:
        return self._get("struct kvm_regs *", ioctls.KVM_GET_REGS, "KVM_GET_REGS")

    def set_regs(self, regs: Any) -> None:
        self._set(ioctls.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self) -> Any:
        return self._get("struct kvm_sregs *", ioctls.KVM_GET_SREGS, "KVM_GET_SREGS")

    def set_sregs(self, sregs: Any) -> None:
        self._set(ioctls.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def get_fpu(self) -> Any:
        return self._get("struct kvm_fpu *", ioctls.KVM_GET_FPU, "KVM_GET_FPU")

    def set_fpu(self, fpu: Any) -> None:
        self._set(ioctls.KVM_SET_FPU, fpu, "KVM_SET_FPU")

    def get_xsave(self) -> Any:
        return self._get("struct kvm_xsave *", ioctls.KVM_GET_XSAVE, "KVM_GET_XSAVE")

    def set_xsave(self, xsave: Any) -> None:
        self._set(ioctls.KVM_SET_XSAVE, xsave, "KVM_SET_XSAVE")

    def get_xcrs(self) -> Any:
        return self._get("struct kvm_xcrs *", ioctls.KVM_GET_XCRS, "KVM_GET_XCRS")

    def set_xcrs(self, xcrs: Any) -> None:
        self._set(ioctls.KVM_SET_XCRS, xcrs, "KVM_SET_XCRS")

    def get_debugregs(self) -> Any:
        return self._get("struct kvm_debugregs *", ioctls.KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS")

    def set_debugregs(self, dregs: Any) -> None:
        self._set(ioctls.KVM_SET_DEBUGREGS, dregs, "KVM_SET_DEBUGREGS")

    def get_lapic(self) -> Any:
        return self._get("struct kvm_lapic_state *", ioctls.KVM_GET_LAPIC, "KVM_GET_LAPIC")

    def set_lapic(self, lapic: Any) -> None:
        self._set(ioctls.KVM_SET_LAPIC, lapic, "KVM_SET_LAPIC")

    def get_vcpu_events(self) -> Any:
        return self._get("struct kvm_vcpu_events *", ioctls.KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS")

    def set_vcpu_events(self, ev: Any) -> None:
        self._set(ioctls.KVM_SET_VCPU_EVENTS, ev, "KVM_SET_VCPU_EVENTS")

    def get_mp_state(self) -> int:
        """KVM_GET_MP_STATE: runnable, halted, waiting for INIT/SIPI, ..."""
        state = self._get("struct kvm_mp_state *", ioctls.KVM_GET_MP_STATE, "KVM_GET_MP_STATE")
        return int(state.mp_state)

    def set_mp_state(self, mp_state: int) -> None:
        state = new("struct kvm_mp_state *")
        state.mp_state = mp_state
        self._set(ioctls.KVM_SET_MP_STATE, state, "KVM_SET_MP_STATE")

    def runnable(self) -> bool:
        """Whether the vCPU executes instructions (not halted, not waiting for INIT/SIPI)."""
        return self.get_mp_state() == constants.KVM_MP_STATE_RUNNABLE

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        """The values of `indices`; KVM stops at the first MSR it refuses, which is left out."""
        msrs = new("struct kvm_msrs *", {"nmsrs": len(indices), "entries": len(indices)})
        msrs.nmsrs = len(indices)
        for i, idx in enumerate(indices):
            msrs.entries[i].index = idx
        got = ioctl(self.fd, ioctls.KVM_GET_MSRS, msrs, f"KVM_GET_MSRS on vCPU {self.index}")
        return {int(msrs.entries[i].index): int(msrs.entries[i].data) for i in range(got)}

    def set_msrs(self, values: dict[int, int]) -> None:
        msrs = new("struct kvm_msrs *", {"nmsrs": len(values), "entries": len(values)})
        msrs.nmsrs = len(values)
        for i, (idx, val) in enumerate(values.items()):
            msrs.entries[i].index = idx
            msrs.entries[i].data = val
        done = ioctl(self.fd, ioctls.KVM_SET_MSRS, msrs, f"KVM_SET_MSRS on vCPU {self.index}")
        if done != len(values):
            bad = list(values)[done]
            raise KvmCallFailed(f"KVM_SET_MSRS on vCPU {self.index} refused MSR {bad:#x}", errno.EINVAL)

    # --- whole-state transfer, as raw kernel structs (snapshots) --------------------------
    def get_raw(self, kind: str) -> bytes:
        """One piece of vCPU state as the kernel's struct, byte for byte: `kind` is a key of
        `RAW_STATE` (regs, sregs, xsave, xcrs, debugregs, lapic, events)."""
        ctype = RAW_STATE[kind][0]
        get = self._raw_calls[kind][0]
        obj = self._raw_buffer(kind, ctype)
        name = "KVM_GET_XSAVE2" if get == ioctls.KVM_GET_XSAVE2 else f"KVM_GET_{kind.upper()}"
        ioctl(self.fd, get, obj, f"{name} on vCPU {self.index}")
        return bytes(ffi.buffer(obj))

    def set_raw(self, kind: str, raw: bytes) -> None:
        """Put back what `get_raw(kind)` returned (into a buffer reused per kind: no allocation)."""
        ctype = RAW_STATE[kind][0]
        put = self._raw_calls[kind][1]
        obj = self._raw_buffer(kind, ctype)
        buf = ffi.buffer(obj)
        if len(raw) != len(buf):
            raise KvmSetupError(f"saved {kind} of vCPU {self.index} is {len(raw)} bytes, this host's is {len(buf)}")
        buf[:] = raw
        ioctl(self.fd, put, obj, f"KVM_SET_{kind.upper()} on vCPU {self.index}")
        if kind == "regs" and self.sync_regs:
            # the kvm_run mirror is refreshed only at the next exit: keep synced_rip() true now
            ffi.memmove(ffi.addressof(self._sync_gprs), obj, len(buf))

    def _raw_buffer(self, kind: str, ctype: str) -> Any:
        obj = self._raw.get(kind)
        if obj is None:
            obj = self._raw[kind] = new(ctype)
        return obj

    def saveable_msrs(self, candidates: list[int], *, keep: frozenset[int] = frozenset()) -> list[int]:
        """The MSRs of `candidates` that KVM both reads (KVM_GET_MSRS stops at the first one it
        refuses: that one is dropped and the rest asked again) and takes back with the value it
        read (some MSRs it lists, such as the async-PF acknowledgement, it refuses to set while
        the guest's CPUID lacks the feature). The write-back probe skips `keep` (the TSC: writing
        it back would move the guest's clock), which is kept as read."""
        readable: list[int] = []
        rest = list(candidates)
        while rest:
            got = self.get_msrs(rest)
            readable += rest[: len(got)]
            rest = rest[len(got) + 1 :]
        values = self.get_msrs(readable)
        accepted = []
        for idx in readable:
            if idx in keep:
                accepted.append(idx)
                continue
            msrs = new("struct kvm_msrs *", {"nmsrs": 1, "entries": 1})
            msrs.nmsrs = 1
            msrs.entries[0].index, msrs.entries[0].data = idx, values[idx]
            if libc.ioctl(self.fd, ioctls.KVM_SET_MSRS, msrs) == 1:
                accepted.append(idx)
        return accepted

    def get_msrs_raw(self, indices: list[int]) -> bytes:
        """The `kvm_msr_entry` array for `indices` (all must be readable), raw."""
        n = len(indices)
        msrs = new("struct kvm_msrs *", {"nmsrs": n, "entries": n})
        msrs.nmsrs = n
        for i, idx in enumerate(indices):
            msrs.entries[i].index = idx
        got = ioctl(self.fd, ioctls.KVM_GET_MSRS, msrs, f"KVM_GET_MSRS on vCPU {self.index}")
        if got != n:
            raise KvmCallFailed(f"KVM_GET_MSRS on vCPU {self.index} refused MSR {indices[got]:#x}", errno.EINVAL)
        return bytes(ffi.buffer(msrs.entries, n * ffi.sizeof("struct kvm_msr_entry")))

    def set_msrs_raw(self, entries: bytes) -> None:
        """KVM_SET_MSRS of a raw `kvm_msr_entry` array, as `get_msrs_raw` returned it."""
        size = ffi.sizeof("struct kvm_msr_entry")
        n = len(entries) // size
        if n == 0:
            return
        msrs = self._msr_sets.get(n)
        if msrs is None:
            msrs = self._msr_sets[n] = new("struct kvm_msrs *", {"nmsrs": n, "entries": n})
        msrs.nmsrs = n
        ffi.buffer(msrs.entries, n * size)[:] = entries
        done = ioctl(self.fd, ioctls.KVM_SET_MSRS, msrs, f"KVM_SET_MSRS on vCPU {self.index}")
        if done != n:
            raise KvmCallFailed(
                f"KVM_SET_MSRS on vCPU {self.index} refused MSR {int(msrs.entries[done].index):#x}", errno.EINVAL
            )

    def get_cpuid(self) -> bytes:
        """KVM_GET_CPUID2: the table this vCPU was given, raw (a `kvm_cpuid2` header and entries)."""
        n = 256
        while True:
            cpuid = new("struct kvm_cpuid2 *", {"nent": n, "entries": n})
            cpuid.nent = n
            rc = libc.ioctl(self.fd, ioctls.KVM_GET_CPUID2, cpuid)
            if rc >= 0:
                break
            if ffi.errno != errno.E2BIG or n >= 4096:
                raise KvmCallFailed(f"KVM_GET_CPUID2 on vCPU {self.index}", ffi.errno)
            n *= 2
        size = ffi.sizeof("struct kvm_cpuid2") + int(cpuid.nent) * ffi.sizeof("struct kvm_cpuid_entry2")
        return bytes(ffi.buffer(cpuid, size))

    def set_cpuid_raw(self, raw: bytes) -> None:
        head = ffi.sizeof("struct kvm_cpuid2")
        n = (len(raw) - head) // ffi.sizeof("struct kvm_cpuid_entry2")
        cpuid = new("struct kvm_cpuid2 *", {"nent": n, "entries": n})
        ffi.buffer(cpuid, len(raw))[:] = raw
        self._set(ioctls.KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2")

    def set_cpuid(self, cpuid: Any) -> None:
        self._set(ioctls.KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2")

    def set_guest_debug(self, control: int, debugreg: list[int] | None = None) -> None:
        """KVM_SET_GUEST_DEBUG; `debugreg` are DR0-DR3, then DR6 and DR7 at indices 6 and 7."""
        dbg = new("struct kvm_guest_debug *")
        dbg.control = control
        regs = list(debugreg or [])
        for i, v in enumerate(regs):
            dbg.arch.debugreg[i] = v
        self._set(ioctls.KVM_SET_GUEST_DEBUG, dbg, "KVM_SET_GUEST_DEBUG")
        self._guest_debug, self._debugreg = control, regs

    @property
    def guest_debug(self) -> int:
        return self._guest_debug

    def translate(self, gva: int) -> int | None:
        """KVM_TRANSLATE: the guest-physical address of `gva` under the current paging, or None."""
        tr = new("struct kvm_translation *")
        tr.linear_address = gva
        self._set(ioctls.KVM_TRANSLATE, tr, "KVM_TRANSLATE")
        return int(tr.physical_address) if tr.valid else None

    def __repr__(self) -> str:
        return f"Vcpu({self.index})"


# kind -> (struct, get ioctl, set ioctl): the state a snapshot moves as the kernel's bytes
RAW_STATE: dict[str, tuple[str, int, int]] = {
    "regs": ("struct kvm_regs *", ioctls.KVM_GET_REGS, ioctls.KVM_SET_REGS),
    "sregs": ("struct kvm_sregs *", ioctls.KVM_GET_SREGS, ioctls.KVM_SET_SREGS),
    "xsave": ("struct kvm_xsave *", ioctls.KVM_GET_XSAVE, ioctls.KVM_SET_XSAVE),
    "xcrs": ("struct kvm_xcrs *", ioctls.KVM_GET_XCRS, ioctls.KVM_SET_XCRS),
    "debugregs": ("struct kvm_debugregs *", ioctls.KVM_GET_DEBUGREGS, ioctls.KVM_SET_DEBUGREGS),
    "lapic": ("struct kvm_lapic_state *", ioctls.KVM_GET_LAPIC, ioctls.KVM_SET_LAPIC),
    "events": ("struct kvm_vcpu_events *", ioctls.KVM_GET_VCPU_EVENTS, ioctls.KVM_SET_VCPU_EVENTS),
}

__all__ = ["RAW_STATE", "RING_ENTRY", "_MAX_MSRS", "Vcpu"]
