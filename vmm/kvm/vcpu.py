"""`Vcpu`: one vCPU file descriptor, its shared `kvm_run` page, registers and the run call."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from kvm_abi import caps, constants, ffi, ioctls, libc
from vmm.errors import KvmCallFailed, PyvmmError
from vmm.kvm.calls import NULL, cast, ioctl, new
from vmm.kvm.exits import Exit, make_view

if TYPE_CHECKING:
    from vmm.kvm.vm import Vm

_VIEW_TABLE_SIZE = 64  # exit reasons below this get a preallocated view


class Vcpu:
    def __init__(self, vm: Vm, fd: int, index: int) -> None:
        self.vm = vm
        self.fd = fd
        self.index = index
        size = vm.kvm.vcpu_mmap_size
        ptr = libc.mmap(NULL, size, constants.PROT_READ | constants.PROT_WRITE, constants.MAP_SHARED, fd, 0)
        if int(ffi.cast("uintptr_t", ptr)) == constants.MAP_FAILED:
            os.close(fd)
            raise PyvmmError(f"cannot map the kvm_run page of vCPU {index} (errno {ffi.errno})")
        self._run_ptr = ptr
        self._run_size = size
        self.kvm_run: Any = cast("struct kvm_run *", ptr)
        # RIP on every exit without an ioctl: ask KVM to mirror the GPRs into kvm_run.
        self.sync_regs = vm.kvm.check_extension(caps.KVM_CAP_SYNC_REGS) & constants.KVM_SYNC_X86_REGS != 0
        if self.sync_regs:
            self.kvm_run.kvm_valid_regs = constants.KVM_SYNC_X86_REGS
        self._sync_gprs = self.kvm_run.s.regs.regs
        self._views: list[Exit] = [make_view(self, self.kvm_run, r) for r in range(_VIEW_TABLE_SIZE)]
        # views whose common fields are decoded on every exit (I/O: read by every port handler)
        self._loaders: list[Any] = [getattr(v, "load", None) for v in self._views]
        self._run_request = ioctls.KVM_RUN
        self._ioctl = libc.ioctl
        self.exits = 0
        self.kicks = 0

    def close(self) -> None:
        if self.fd >= 0:
            libc.munmap(self._run_ptr, self._run_size)
            os.close(self.fd)
            self.fd = -1

    # --- running -------------------------------------------------------------------------
    def run(self) -> Exit:
        """One KVM_RUN; returns the typed view of the exit. A pending signal gives an `IntrExit`."""
        if self._ioctl(self.fd, self._run_request, NULL) < 0:
            err = ffi.errno
            if err not in (errno.EINTR, errno.EAGAIN):
                raise KvmCallFailed(f"KVM_RUN on vCPU {self.index}", err)
            self.kvm_run.exit_reason = 10  # KVM_EXIT_INTR: KVM leaves the reason stale on EAGAIN
        self.exits += 1
        reason = self.kvm_run.exit_reason
        if reason < _VIEW_TABLE_SIZE:
            load = self._loaders[reason]
            if load is not None:
                load()
            return self._views[reason]
        return make_view(self, self.kvm_run, reason)

    def request_stop(self) -> None:
        """Make the current or next KVM_RUN return at once (async-signal-safe: one byte store).
        `kicks` counts requests, so code that borrows immediate_exit can tell one arrived."""
        self.kicks += 1
        self.kvm_run.immediate_exit = 1

    def clear_stop(self) -> None:
        self.kvm_run.immediate_exit = 0

    def restore_stop(self, kicks_before: int, keep: bool = False) -> None:
        """After borrowing immediate_exit: clear it, unless `keep` or a request came since
        `kicks_before`. Cleared first and checked after, so a request racing with this survives."""
        self.kvm_run.immediate_exit = 0
        if keep or self.kicks != kicks_before:
            self.kvm_run.immediate_exit = 1

    def synced_rip(self) -> int | None:
        return int(self._sync_gprs.rip) if self.sync_regs else None

    # --- registers -----------------------------------------------------------------------
    def get_regs(self) -> Any:
        regs = new("struct kvm_regs *")
        ioctl(self.fd, ioctls.KVM_GET_REGS, regs, "KVM_GET_REGS")
        return regs

    def set_regs(self, regs: Any) -> None:
        ioctl(self.fd, ioctls.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self) -> Any:
        sregs = new("struct kvm_sregs *")
        ioctl(self.fd, ioctls.KVM_GET_SREGS, sregs, "KVM_GET_SREGS")
        return sregs

    def set_sregs(self, sregs: Any) -> None:
        ioctl(self.fd, ioctls.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def get_fpu(self) -> Any:
        fpu = new("struct kvm_fpu *")
        ioctl(self.fd, ioctls.KVM_GET_FPU, fpu, "KVM_GET_FPU")
        return fpu

    def set_fpu(self, fpu: Any) -> None:
        ioctl(self.fd, ioctls.KVM_SET_FPU, fpu, "KVM_SET_FPU")

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        msrs = new("struct kvm_msrs *", {"nmsrs": len(indices), "entries": len(indices)})
        msrs.nmsrs = len(indices)
        for i, idx in enumerate(indices):
            msrs.entries[i].index = idx
        got = ioctl(self.fd, ioctls.KVM_GET_MSRS, msrs, "KVM_GET_MSRS")
        return {int(msrs.entries[i].index): int(msrs.entries[i].data) for i in range(got)}

    def set_msrs(self, values: dict[int, int]) -> None:
        msrs = new("struct kvm_msrs *", {"nmsrs": len(values), "entries": len(values)})
        msrs.nmsrs = len(values)
        for i, (idx, val) in enumerate(values.items()):
            msrs.entries[i].index = idx
            msrs.entries[i].data = val
        done = ioctl(self.fd, ioctls.KVM_SET_MSRS, msrs, "KVM_SET_MSRS")
        if done != len(values):
            bad = list(values)[done]
            raise PyvmmError(f"KVM_SET_MSRS refused MSR {bad:#x}")

    def set_cpuid(self, cpuid: Any) -> None:
        ioctl(self.fd, ioctls.KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2")

    def set_guest_debug(self, control: int, debugreg: list[int] | None = None) -> None:
        dbg = new("struct kvm_guest_debug *")
        dbg.control = control
        for i, v in enumerate(debugreg or []):
            dbg.arch.debugreg[i] = v
        ioctl(self.fd, ioctls.KVM_SET_GUEST_DEBUG, dbg, "KVM_SET_GUEST_DEBUG")

    def get_vcpu_events(self) -> Any:
        ev = new("struct kvm_vcpu_events *")
        ioctl(self.fd, ioctls.KVM_GET_VCPU_EVENTS, ev, "KVM_GET_VCPU_EVENTS")
        return ev

    def set_vcpu_events(self, ev: Any) -> None:
        ioctl(self.fd, ioctls.KVM_SET_VCPU_EVENTS, ev, "KVM_SET_VCPU_EVENTS")

    def translate(self, gva: int) -> int | None:
        """KVM_TRANSLATE: the guest-physical address of `gva` under the current paging, or None."""
        tr = new("struct kvm_translation *")
        tr.linear_address = gva
        ioctl(self.fd, ioctls.KVM_TRANSLATE, tr, "KVM_TRANSLATE")
        return int(tr.physical_address) if tr.valid else None
