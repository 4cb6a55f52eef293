"""The kernel SPP backend (vmm.spp.kernel) against synthetic kvm_run pages and a stand-in for a
kernel that runs the SPP patch.

No host runs that patch, and its numbers mean other things to a stock kernel, so nothing here
touches /dev/kvm. `PatchedKernelStandIn` takes the place of the patched kernel's ioctls: it
records every call with the bytes it was given and answers as the patch's code does (RFC v2 code
for rfc-v1, v12 code for v12: see shared/reference/spp.md §2)."""

from __future__ import annotations

import errno
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from kvm_abi import constants as kc
from kvm_abi import ffi, ioctls
from kvm_abi.spp import (
    FULL_ACCESS,
    KVM_SUBPAGES_GET_ACCESS,
    KVM_SUBPAGES_SET_ACCESS,
    RUN_SPP_ADDR_OFFSET,
    RUN_SPP_INSN_LEN_OFFSET,
    profile,
    spp_ffi,
)
from vmm.board.bus import AddressSpace
from vmm.board.memory import GuestMemory
from vmm.errors import ConfigError, ExitStatus, KvmCallFailed, UserCodeError, status_of
from vmm.kvm.exits import DebugExit, make_view
from vmm.runner.control import RunControl
from vmm.runner.policy import ExitPolicy
from vmm.spp import choice as select
from vmm.spp.controller import Spp
from vmm.spp.event import (
    ALLOW,
    DENY,
    AllowAndUnprotect,
    Inject,
    SppEvent,
    SppVerdict,
    StopVm,
    WriteInstead,
)
from vmm.spp.kernel import KernelSpp, attach_kernel_backend
from vmm.spp.masks import MaskTable
from vmm.verdict import Stop

VM_FD = 7
VCPU_FD = 8
RAM = 0x40000  # 64 pages of guest RAM in the stand-in's memslot
RIP = 0x1000


@dataclass
class Call:
    fd: int
    request: int
    data: bytes  # the argument's bytes as the caller passed them


class PatchedKernelStandIn:
    """A stand-in for a kernel running the SPP patch (`abi` = rfc-v1 or v12), as an ioctl callable.

    SET/GET_ACCESS follow the patch's code: RFC v2 (used for rfc-v1) takes a 528-byte struct,
    allows 1..128 pages, applies access_map[0] to every page and reads untouched pages as 0; v12
    needs KVM_ENABLE_CAP(182) first (-ENODEV before), takes a 16-byte header plus one u32 per
    page, refuses flags != 0 or more than 512 pages (-EINVAL), starts every page at FULL and
    gives -EFAULT for a gfn outside the memslots. Both return npages. The vCPU calls the backend
    makes (registers, events, guest debug) are stored as given and read back.
    """

    def __init__(self, abi: str, ram: int = RAM) -> None:
        self.profile = profile(abi)
        self.calls: list[Call] = []
        self.gfns = range(ram >> 12)
        self.enabled = self.profile.cap is None
        self.access: dict[int, int] = {}
        self.fail: dict[int, int] = {}  # request -> errno to answer with
        self.guest_debug = 0
        self.saved: dict[tuple[int, str], bytes] = {}  # (fd, struct) -> what SET_* stored
        regs: Any = ffi.new("struct kvm_regs *")
        regs.rip = RIP
        self.regs = regs

    def __call__(self, fd: int, request: int, arg: Any) -> int:
        p = self.profile
        if request in (KVM_SUBPAGES_SET_ACCESS, KVM_SUBPAGES_GET_ACCESS):
            sub: Any = spp_ffi.cast(p.subpage_struct + " *", arg)
            n = int(sub.npages)
            size = p.subpage_header_size + 4 * n if p.subpage_flexible else p.subpage_sizeof
            self.calls.append(Call(fd, request, bytes(ffi.buffer(ffi.cast("char *", arg), size))))
        else:
            self.calls.append(Call(fd, request, b""))
        if request in self.fail:
            return -self.fail[request]
        if request == KVM_SUBPAGES_SET_ACCESS:
            return self._access(fd, sub, write=True)
        if request == KVM_SUBPAGES_GET_ACCESS:
            return self._access(fd, sub, write=False)
        if request == ioctls.KVM_ENABLE_CAP:
            ec: Any = ffi.cast("struct kvm_enable_cap *", arg)
            cap = ec.cap
            if fd != VM_FD or cap != p.cap:
                return -errno.EINVAL
            if not self.enabled:
                self.access = dict.fromkeys(self.gfns, FULL_ACCESS)
            self.enabled = True
            return 0
        if request == ioctls.KVM_SET_GUEST_DEBUG:
            dbg: Any = ffi.cast("struct kvm_guest_debug *", arg)
            self.guest_debug = int(dbg.control)
            return 0
        if request == ioctls.KVM_GET_REGS:
            ffi.memmove(arg, self.regs, ffi.sizeof("struct kvm_regs"))
            return 0
        if request == ioctls.KVM_SET_REGS:
            ffi.memmove(self.regs, arg, ffi.sizeof("struct kvm_regs"))
            return 0
        for get, put, struct in (
            (ioctls.KVM_GET_SREGS, ioctls.KVM_SET_SREGS, "struct kvm_sregs"),
            (ioctls.KVM_GET_VCPU_EVENTS, ioctls.KVM_SET_VCPU_EVENTS, "struct kvm_vcpu_events"),
        ):
            if request == get:
                ffi.memmove(arg, self.saved.get((fd, struct), bytes(ffi.sizeof(struct))), ffi.sizeof(struct))
                return 0
            if request == put:
                self.saved[(fd, struct)] = bytes(ffi.buffer(ffi.cast(struct + " *", arg)))
                return 0
        return -errno.ENOTTY

    def _access(self, fd: int, sub: Any, *, write: bool) -> int:
        p = self.profile
        if fd != VM_FD:
            return -errno.ENOTTY
        n = int(sub.npages)
        gfn = int(getattr(sub, p.subpage_fields[0]))
        if not self.enabled:
            return -errno.ENODEV
        if p.subpage_flexible:
            if sub.flags != 0 or n > p.max_pages:
                return -errno.EINVAL
            if n == 0:
                return 0
        elif not 1 <= n <= p.max_pages:
            return -errno.EINVAL
        if any(g not in self.gfns for g in range(gfn, gfn + n)):
            return -errno.EFAULT
        for i in range(n):
            if write:
                self.access[gfn + i] = int(sub.access_map[0 if p.set_applies_first_mask_to_all else i])
            else:
                sub.access_map[i] = self.access.get(gfn + i, 0)
        return n

    # --- what tests look at --------------------------------------------------------------------
    def set_access_calls(self) -> list[tuple[int, int, int, list[int]]]:
        """(gfn, npages, flags or None, access_map[:npages]) of each SET_ACCESS, decoded here from the
        recorded bytes by the profile's documented offsets (0, 8, 12 or 16)."""
        out = []
        for c in self.calls:
            if c.request != KVM_SUBPAGES_SET_ACCESS:
                continue
            gfn = int.from_bytes(c.data[0:8], "little")
            if self.profile.subpage_flexible:
                n, flags = int.from_bytes(c.data[8:12], "little"), int.from_bytes(c.data[12:16], "little")
            else:
                n, flags = int.from_bytes(c.data[8:16], "little"), -1
            masks = [int.from_bytes(c.data[16 + 4 * i : 20 + 4 * i], "little") for i in range(n)]
            out.append((gfn, n, flags, masks))
        return out

    def requests(self) -> list[int]:
        return [c.request for c in self.calls]


@dataclass
class FakeVcpu:
    """A vCPU as the backend sees it: an index, a kvm_run page (here plain memory), and the vCPU
    contract's register, event and guest-debug calls, answered by the stand-in kernel."""

    kernel: Callable[[int, int, Any], int]
    fd: int = VCPU_FD
    index: int = 0
    page: Any = field(default_factory=lambda: ffi.new("char[]", 4096))

    def _call(self, request: int, arg: Any, name: str) -> Any:
        rc = self.kernel(self.fd, request, arg)
        if rc < 0:
            raise KvmCallFailed(f"{name} on vCPU {self.index}", -rc)
        return arg

    def get_regs(self) -> Any:
        return self._call(ioctls.KVM_GET_REGS, ffi.new("struct kvm_regs *"), "KVM_GET_REGS")

    def set_regs(self, regs: Any) -> None:
        self._call(ioctls.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self) -> Any:
        return self._call(ioctls.KVM_GET_SREGS, ffi.new("struct kvm_sregs *"), "KVM_GET_SREGS")

    def set_sregs(self, sregs: Any) -> None:
        self._call(ioctls.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def get_vcpu_events(self) -> Any:
        return self._call(ioctls.KVM_GET_VCPU_EVENTS, ffi.new("struct kvm_vcpu_events *"), "KVM_GET_VCPU_EVENTS")

    def set_vcpu_events(self, ev: Any) -> None:
        self._call(ioctls.KVM_SET_VCPU_EVENTS, ev, "KVM_SET_VCPU_EVENTS")

    def set_guest_debug(self, control: int, debugreg: list[int] | None = None) -> None:
        dbg: Any = ffi.new("struct kvm_guest_debug *")
        dbg.control = control
        self._call(ioctls.KVM_SET_GUEST_DEBUG, dbg, "KVM_SET_GUEST_DEBUG")

    def synced_rip(self) -> int | None:
        return int(self.kvm_run.s.regs.regs.rip)

    @property
    def sync_regs(self) -> bool:
        return True

    @property
    def kvm_run(self) -> Any:
        return ffi.cast("struct kvm_run *", self.page)

    def spp_exit(self, reason: int, addr: int, insn_len: int | None = None, sync_regs: bool = True) -> None:
        """Write an SPP exit the way the patched kernel would: raw bytes at the documented offsets."""
        run = self.kvm_run
        run.exit_reason = reason
        ffi.cast("uint64_t *", self.page + RUN_SPP_ADDR_OFFSET)[0] = addr
        if insn_len is not None:
            ffi.cast("uint8_t *", self.page + RUN_SPP_INSN_LEN_OFFSET)[0] = insn_len
        run.kvm_valid_regs = kc.KVM_SYNC_X86_REGS if sync_regs else 0
        run.kvm_dirty_regs = 0
        run.s.regs.regs.rip = RIP

    @property
    def rip(self) -> int:
        return int(self.kvm_run.s.regs.regs.rip)


def exit_policy() -> ExitPolicy:
    return ExitPolicy(
        AddressSpace("port", 0x10000, direct_index=True), AddressSpace("address", 1 << 52, direct_index=False),
        on_interrupt=lambda ex: None,
    )  # fmt: skip


class Rig:
    """One VM's worth of parts: guest RAM, the controller with a KernelSpp, an exit policy, the
    stand-in kernel, and an SPP policy the test sets through `verdict`."""

    def __init__(self, abi: str, *, with_vcpu: bool = True) -> None:
        self.memory = GuestMemory()
        self.memory.add_ram(0, RAM)
        self.kernel = PatchedKernelStandIn(abi)
        self.vcpu = FakeVcpu(self.kernel)
        self.log = io.StringIO()
        host = SimpleNamespace(memory=self.memory, control=RunControl([]))
        vcpus = [self.vcpu] if with_vcpu else []

        def make(spp: Spp) -> KernelSpp:
            return KernelSpp(abi, vm_fd=VM_FD, vcpus=vcpus, memory=self.memory, controller=spp,
                             ioctl=self.kernel, log=self.log)  # fmt: skip

        self.spp = Spp(host, make)  # type: ignore[arg-type]
        self.backend: KernelSpp = self.spp.backend  # type: ignore[assignment]
        self.verdict: SppVerdict = DENY
        self.spp.add_policy(lambda ev: self.verdict)
        self.policy = exit_policy()
        self.backend.register(self.policy)
        if with_vcpu:
            self.backend.enable()

    def fire(self, addr: int, insn_len: int | None = 3, *, sync_regs: bool = True) -> Stop | None:
        """Deliver one SPP exit through the exit policy, as the run loop would."""
        p = self.backend.profile
        self.vcpu.spp_exit(p.exit_reason, addr, insn_len if p.exit_has_insn_len else None, sync_regs)
        return self.policy.handle(make_view(self.vcpu, self.vcpu.kvm_run, p.exit_reason))

    def debug_exit(self, exception: int = 1) -> Stop | None:
        run = self.vcpu.kvm_run
        run.exit_reason = DebugExit.reason
        run.debug.arch.exception = exception
        return self.policy.handle(DebugExit(self.vcpu, run))

    @property
    def event(self) -> SppEvent:
        return self.spp.events[-1]

    def close(self) -> None:
        self.memory.close()


@pytest.fixture
def rfc() -> Any:
    rig = Rig("rfc-v1")
    yield rig
    rig.close()


@pytest.fixture
def v12() -> Any:
    rig = Rig("v12")
    yield rig
    rig.close()


PAGE = 0x10000
SUBPAGE_5 = PAGE + 5 * 128


# --- decode ----------------------------------------------------------------------------------
def test_rfc_v1_decodes_the_gpa_at_run_32(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0)
    assert rfc.fire(SUBPAGE_5 + 4) is None
    ev = rfc.event
    assert (ev.gpa, ev.page_mask, ev.vcpu, ev.rip, ev.backend) == (SUBPAGE_5 + 4, 0, 0, RIP, "kernel:rfc-v1")
    assert ev.subpage == 5 and ev.write_gpa == SUBPAGE_5 + 4
    assert (ev.size, ev.data) == (None, None)


def test_v12_ept_path_gpa(v12: Rig) -> None:
    v12.spp.protect(PAGE, FULL_ACCESS & ~(1 << 5))
    ev = v12.backend.decode(_exit(v12, SUBPAGE_5 + 8, 4), vcpu=3)
    assert (ev.gpa, ev.page_mask, ev.vcpu, ev.rip, ev.backend) == (SUBPAGE_5 + 8, 0xFFFFFFDF, 3, RIP, "kernel:v12")


def test_v12_emulator_path_gfn_names_the_page_and_its_first_denied_subpage(v12: Rig) -> None:
    v12.spp.protect(PAGE, FULL_ACCESS & ~(0b11 << 7))  # sub-pages 7 and 8 denied
    ev = v12.backend.decode(_exit(v12, PAGE >> 12, 3))
    assert ev.gpa == PAGE + 7 * 128 and ev.write_gpa is None
    assert ev.page == PAGE and ev.page_mask == FULL_ACCESS & ~(0b11 << 7)


def test_v12_gpa_reading_wins_when_both_readings_are_protected(v12: Rig) -> None:
    v12.spp.protect(0, 0)  # addr 0x10 is a denied byte of page 0 ...
    v12.spp.protect(0x10000, 0)  # ... and 0x10 is also the number of this protected page
    assert v12.backend.decode(_exit(v12, 0x10, 3)).gpa == 0x10


def test_v12_access_starting_in_an_allowed_subpage_names_its_first_denied_byte(v12: Rig) -> None:
    v12.spp.protect(PAGE, FULL_ACCESS & ~(1 << 5))
    ev = v12.backend.decode(_exit(v12, SUBPAGE_5 - 4, 3))  # an 8-byte store across sub-pages 4|5
    assert (ev.gpa, ev.write_gpa) == (SUBPAGE_5, SUBPAGE_5 - 4)


def test_rip_is_none_without_sync_regs(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.vcpu.spp_exit(29, PAGE, 3, sync_regs=False)
    assert v12.backend.decode(v12.vcpu.kvm_run).rip is None


def test_mainline_kvm_run_has_no_spp_member() -> None:
    run: Any = ffi.new("struct kvm_run *")
    with pytest.raises(AttributeError):
        run.spp  # noqa: B018  # the patch's member is read through kvm_abi.spp's own struct


# --- SET/GET_ACCESS --------------------------------------------------------------------------
def test_rfc_v1_set_access_struct(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0x0000FFFF, npages=3)
    [call] = [c for c in rfc.kernel.calls if c.request == KVM_SUBPAGES_SET_ACCESS]
    assert call.request == 0x4008AE4A and call.fd == VM_FD
    assert len(call.data) == 528
    assert rfc.kernel.set_access_calls() == [(PAGE >> 12, 3, -1, [0x0000FFFF] * 3)]
    assert call.data[16 + 12 :] == bytes(528 - 28)  # the unused tail of access_map[128] stays 0
    assert rfc.backend.get_access(PAGE, 4) == [0x0000FFFF] * 3 + [0]  # RFC: untouched reads 0


def test_v12_set_access_struct_has_flags_zero(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0x12345678, npages=2)
    calls = [c for c in v12.kernel.calls if c.request == KVM_SUBPAGES_SET_ACCESS]
    assert [len(c.data) for c in calls] == [16 + 4 * 2]
    assert v12.kernel.set_access_calls() == [(PAGE >> 12, 2, 0, [0x12345678] * 2)]
    assert v12.backend.get_access(PAGE, 3) == [0x12345678] * 2 + [FULL_ACCESS]  # v12: FULL after enable


def test_one_call_per_run_of_consecutive_pages_with_one_mask(v12: Rig) -> None:
    b = v12.backend
    for page, mask in {0x1000: 1, 0x2000: 1, 0x3000: 2, 0x5000: 2, 0x6000: 2}.items():
        b.table.set(page, mask)
    b.apply([0x6000, 0x1000, 0x3000, 0x2000, 0x5000, 0x1000])
    runs = [(gfn, n, masks[0]) for gfn, n, _, masks in v12.kernel.set_access_calls()]
    assert runs == [(1, 2, 1), (3, 1, 2), (5, 2, 2)]


@pytest.mark.parametrize(("abi", "sizes"), [("v12", [512, 512, 36]), ("rfc-v1", [128] * 8 + [36])])
def test_batches_stop_at_the_profile_maximum(abi: str, sizes: list[int]) -> None:
    kernel = PatchedKernelStandIn(abi, ram=2000 * 4096)
    kernel.enabled = True
    table = MaskTable()
    b = KernelSpp(abi, vm_fd=VM_FD, vcpus=[], memory=GuestMemory(), table=table, judge=lambda ev: DENY, ioctl=kernel)
    pages = [i * 4096 for i in range(1060)]
    for p in pages:
        table.set(p, 0)
    b.apply(pages)
    calls = kernel.set_access_calls()
    assert [n for _, n, _, _ in calls] == sizes
    assert [gfn for gfn, _, _, _ in calls] == [sum(sizes[:i]) for i in range(len(sizes))]
    if abi == "v12":
        assert [len(c.data) for c in kernel.calls] == [16 + 4 * n for n in sizes]
        assert {flags for _, _, flags, _ in calls} == {0}


def test_failing_set_access_names_the_page_and_errno(v12: Rig) -> None:
    with pytest.raises(KvmCallFailed) as e:
        v12.backend.table.set(RAM, 0)  # a page past the memslot: the patch answers -EFAULT
        v12.backend.apply([RAM])
    msg = str(e.value)
    assert "\n" not in msg and f"page {RAM:#x}" in msg and f"errno {errno.EFAULT}" in msg
    assert e.value.errno == errno.EFAULT


def test_enotty_says_the_kernel_is_not_patched(v12: Rig) -> None:
    v12.kernel.fail[KVM_SUBPAGES_SET_ACCESS] = errno.ENOTTY
    with pytest.raises(KvmCallFailed, match="not SPP-patched"):
        v12.spp.protect(PAGE, 0)


# --- enabling and registration ---------------------------------------------------------------
def test_v12_enables_with_enable_cap_182_on_the_vm_fd(v12: Rig) -> None:
    [call] = v12.kernel.calls
    assert (call.fd, call.request) == (VM_FD, ioctls.KVM_ENABLE_CAP)
    assert v12.backend.enabled and v12.kernel.enabled


def test_v12_refuses_to_enable_before_vcpus_exist() -> None:
    rig = Rig("v12", with_vcpu=False)
    try:
        with pytest.raises(ConfigError, match="vCPUs"):
            rig.backend.enable()
        assert rig.kernel.calls == []
    finally:
        rig.close()


def test_v12_enable_failure_explains_enodev() -> None:
    rig = Rig("v12", with_vcpu=False)
    try:
        rig.backend.vcpus = [rig.vcpu]
        rig.kernel.fail[ioctls.KVM_ENABLE_CAP] = errno.ENODEV
        with pytest.raises(KvmCallFailed, match="lacks the SPP control"):
            rig.backend.enable()
    finally:
        rig.close()


def test_rfc_v1_enable_calls_nothing(rfc: Rig) -> None:
    assert rfc.kernel.calls == [] and rfc.backend.enabled


def test_register_claims_the_profile_exit_reason(rfc: Rig, v12: Rig) -> None:
    assert rfc.policy._claims == {28: [rfc.backend.handle_exit]}  # rfc-v1 never single-steps
    assert v12.policy._claims == {29: [v12.backend.handle_exit], DebugExit.reason: [v12.backend._on_debug]}


def test_rfc_v1_exit_arrives_as_a_foreign_view_and_other_foreign_exits_pass_by(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0)
    view = make_view(rfc.vcpu, rfc.vcpu.kvm_run, 28)  # x86 has no class for 28 (KVM_EXIT_ARM_NISV)
    rfc.vcpu.spp_exit(28, SUBPAGE_5)
    assert rfc.policy.handle(view) is None and rfc.event.gpa == SUBPAGE_5
    other = make_view(rfc.vcpu, rfc.vcpu.kvm_run, 35)  # RISCV_SBI: still unhandled
    stop = rfc.policy.handle(other)
    assert stop is not None and stop.status == ExitStatus.UNHANDLED_EXIT
    assert len(rfc.spp.events) == 1


def test_only_the_two_implemented_profiles_are_accepted() -> None:
    with pytest.raises(ConfigError, match="rfc-v1 or v12"):
        KernelSpp("v9", vm_fd=VM_FD, vcpus=[], memory=GuestMemory(), table=MaskTable(), judge=lambda e: DENY)
    with pytest.raises(ConfigError, match="controller"):
        KernelSpp("v12", vm_fd=VM_FD, vcpus=[], memory=GuestMemory())


# --- v12 verdicts ----------------------------------------------------------------------------
def test_v12_deny_moves_rip_past_the_instruction_in_sync_regs(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    before = len(v12.kernel.calls)
    assert v12.fire(SUBPAGE_5, insn_len=7) is None
    assert v12.vcpu.rip == RIP + 7
    assert v12.vcpu.kvm_run.kvm_dirty_regs & kc.KVM_SYNC_X86_REGS
    assert len(v12.kernel.calls) == before  # no ioctl on the way


def test_v12_deny_without_sync_regs_uses_get_and_set_regs(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    assert v12.fire(SUBPAGE_5, insn_len=2, sync_regs=False) is None
    assert v12.kernel.requests()[-2:] == [ioctls.KVM_GET_REGS, ioctls.KVM_SET_REGS]
    assert v12.kernel.regs.rip == RIP + 2
    assert v12.vcpu.kvm_run.kvm_dirty_regs == 0


@pytest.mark.parametrize("insn_len", [0, 16])
def test_v12_deny_refuses_an_impossible_instruction_length(v12: Rig, insn_len: int) -> None:
    v12.spp.protect(PAGE, 0)
    stop = v12.fire(SUBPAGE_5, insn_len=insn_len)
    assert stop is not None and stop.status == ExitStatus.SPP_UNENFORCEABLE
    assert v12.vcpu.rip == RIP


def test_v12_allow_single_steps_with_the_page_open_then_restores_it(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0x0F)
    v12.kernel.calls.clear()
    v12.verdict = ALLOW
    assert v12.fire(SUBPAGE_5) is None
    assert v12.vcpu.rip == RIP and not v12.vcpu.kvm_run.kvm_dirty_regs  # the write re-executes
    assert v12.kernel.access[PAGE >> 12] == FULL_ACCESS
    assert v12.kernel.guest_debug == kc.KVM_GUESTDBG_ENABLE | kc.KVM_GUESTDBG_SINGLESTEP
    assert v12.spp.mask(PAGE) == 0x0F  # the table keeps the real mask throughout
    assert v12.debug_exit() is None  # the step's #DB: close the page again
    assert v12.kernel.guest_debug == 0
    assert v12.kernel.access[PAGE >> 12] == 0x0F
    assert v12.backend._steps == {}
    assert v12.kernel.set_access_calls() == [(PAGE >> 12, 1, 0, [FULL_ACCESS]), (PAGE >> 12, 1, 0, [0x0F])]


def test_v12_allow_on_a_second_page_joins_the_open_set(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0, npages=2)
    v12.verdict = ALLOW
    v12.fire(PAGE + 4088)
    v12.fire(PAGE + 4096)  # the same store runs on into the next protected page
    assert v12.backend._steps == {0: {PAGE, PAGE + 4096}}
    v12.debug_exit()
    assert v12.kernel.access[PAGE >> 12] == v12.kernel.access[(PAGE >> 12) + 1] == 0


def test_v12_page_faulting_again_while_open_stops_instead_of_looping(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = ALLOW
    v12.fire(SUBPAGE_5)
    stop = v12.fire(SUBPAGE_5)
    assert stop is not None and stop.status == ExitStatus.SPP_UNENFORCEABLE
    assert v12.kernel.access[PAGE >> 12] == 0 and v12.kernel.guest_debug == 0


def test_v12_debug_exits_that_are_not_the_step_go_to_the_users_handler() -> None:
    rig = Rig("v12")
    try:
        seen: list[int] = []
        rig.policy.on_exit(DebugExit, lambda ex: seen.append(ex.exception))
        rig.debug_exit(exception=3)
        assert seen == [3]
        rig.spp.protect(PAGE, 0)
        rig.verdict = ALLOW
        rig.fire(SUBPAGE_5)
        rig.debug_exit(exception=3)  # a breakpoint, not the single-step
        assert seen == [3, 3] and rig.backend._steps
        rig.debug_exit(exception=1)
        assert seen == [3, 3] and not rig.backend._steps
    finally:
        rig.close()


def test_v12_mask_changes_during_a_step_take_effect_when_it_ends(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = ALLOW
    v12.fire(SUBPAGE_5)
    v12.spp.protect(PAGE, 0xFF)  # from a handler while the page is open
    assert v12.kernel.access[PAGE >> 12] == FULL_ACCESS  # still open for the stepped write
    v12.debug_exit()
    assert v12.kernel.access[PAGE >> 12] == 0xFF


def test_v12_run_end_closes_a_pending_step(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = ALLOW
    v12.fire(SUBPAGE_5)
    v12.spp.run_ended(None)  # type: ignore[arg-type]  # the context is not used on the way out
    assert v12.kernel.access[PAGE >> 12] == 0 and v12.kernel.guest_debug == 0


def test_v12_allow_and_unprotect_subpage_reexecutes(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.kernel.calls.clear()
    v12.verdict = AllowAndUnprotect()
    assert v12.fire(SUBPAGE_5) is None
    assert v12.spp.mask(PAGE) == 1 << 5
    assert v12.kernel.set_access_calls() == [(PAGE >> 12, 1, 0, [1 << 5])]
    assert v12.vcpu.rip == RIP and v12.kernel.guest_debug == 0


def test_v12_allow_and_unprotect_page(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = AllowAndUnprotect("page")
    v12.fire(SUBPAGE_5)
    assert v12.spp.masks() == {} and v12.kernel.access[PAGE >> 12] == FULL_ACCESS


def test_v12_allow_and_unprotect_on_the_emulator_path_steps_while_the_page_stays_protected(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = AllowAndUnprotect()
    v12.fire(PAGE >> 12)  # the emulator's check is page-granular: re-executing would exit again
    assert v12.spp.mask(PAGE) == 1
    assert v12.backend._steps == {0: {PAGE}}
    v12.debug_exit()
    assert v12.kernel.access[PAGE >> 12] == 1


def test_v12_write_instead_writes_through_the_host_mapping_then_skips(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = WriteInstead(b"\xaa\xbb")
    assert v12.fire(SUBPAGE_5 + 2, insn_len=4) is None
    assert v12.memory.read(SUBPAGE_5, 6) == b"\0\0\xaa\xbb\0\0"
    assert v12.vcpu.rip == RIP + 4


def test_v12_write_instead_on_the_emulator_path_cannot_know_where(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = WriteInstead(b"\x01")
    stop = v12.fire(PAGE >> 12)
    assert stop is not None and stop.status == ExitStatus.SPP_UNENFORCEABLE
    assert v12.memory.read(PAGE, 4096) == bytes(4096)


def test_v12_stop_vm(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = StopVm("tamper")
    stop = v12.fire(SUBPAGE_5)
    assert stop is not None and stop.status == ExitStatus.SPP_STOP
    assert stop.reason.startswith("tamper: SPP violation")


def test_v12_inject_keeps_rip_on_the_instruction(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = Inject(13, 0x18)
    assert v12.fire(SUBPAGE_5) is None
    assert v12.vcpu.rip == RIP and not v12.vcpu.kvm_run.kvm_dirty_regs
    ev = _saved_events(v12)
    assert (ev.exception.injected, ev.exception.nr, ev.exception.has_error_code, ev.exception.error_code) == (
        1, 13, 1, 0x18,
    )  # fmt: skip
    assert ev.flags == 0


def test_inject_drops_the_error_code_of_a_vector_that_has_none(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = Inject(6)  # #UD pushes no error code; claiming one would fail VM entry
    v12.fire(SUBPAGE_5)
    ev = _saved_events(v12)
    assert (ev.exception.nr, ev.exception.has_error_code) == (6, 0)


def test_inject_page_fault_sets_cr2(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = Inject(14, 0b11)
    v12.fire(SUBPAGE_5 + 1)
    sregs: Any = ffi.new("struct kvm_sregs *")
    ffi.memmove(sregs, v12.kernel.saved[(VCPU_FD, "struct kvm_sregs")], ffi.sizeof(sregs[0]))
    assert sregs.cr2 == SUBPAGE_5 + 1


def test_a_non_verdict_is_the_policys_error(v12: Rig) -> None:
    v12.spp.protect(PAGE, 0)
    v12.verdict = "deny"  # type: ignore[assignment]
    with pytest.raises(UserCodeError, match="returned 'deny', which is not a verdict") as e:
        v12.fire(SUBPAGE_5)
    assert status_of(e.value) == ExitStatus.HANDLER_ERROR


# --- rfc-v1 verdicts -------------------------------------------------------------------------
def test_rfc_v1_deny_just_resumes(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0)
    rfc.kernel.calls.clear()
    assert rfc.fire(SUBPAGE_5) is None
    assert rfc.vcpu.rip == RIP and not rfc.vcpu.kvm_run.kvm_dirty_regs and rfc.kernel.calls == []


def test_rfc_v1_allow_is_a_deny_with_one_warning(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0)
    rfc.kernel.calls.clear()
    rfc.verdict = ALLOW
    assert rfc.fire(SUBPAGE_5) is None
    assert rfc.fire(SUBPAGE_5) is None
    assert rfc.log.getvalue().count("warning") == 1 and "treating Allow as Deny" in rfc.log.getvalue()
    assert rfc.vcpu.rip == RIP and rfc.kernel.calls == [] and rfc.spp.mask(PAGE) == 0


def test_rfc_v1_allow_and_unprotect_goes_through_the_controller_and_warns(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0)
    rfc.verdict = AllowAndUnprotect()
    rfc.fire(SUBPAGE_5)
    rfc.fire(PAGE)
    assert rfc.spp.mask(PAGE) == 1 | 1 << 5
    assert [m[0] for _, _, _, m in rfc.kernel.set_access_calls()] == [0, 1 << 5, 1 | 1 << 5]
    assert rfc.log.getvalue().count("stays dropped") == 1


def test_rfc_v1_write_instead(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0)
    rfc.verdict = WriteInstead(b"hi")
    assert rfc.fire(SUBPAGE_5) is None
    assert rfc.memory.read(SUBPAGE_5, 2) == b"hi" and rfc.vcpu.rip == RIP


def test_rfc_v1_stop_vm_and_inject(rfc: Rig) -> None:
    rfc.spp.protect(PAGE, 0)
    rfc.verdict = StopVm()
    stop = rfc.fire(SUBPAGE_5)
    assert stop is not None and stop.status == ExitStatus.SPP_STOP
    rfc.verdict = Inject(13)
    assert rfc.fire(SUBPAGE_5) is None
    assert _saved_events(rfc).exception.nr == 13 and rfc.vcpu.rip == RIP


# --- attaching to a machine ------------------------------------------------------------------
def test_attach_kernel_backend_registers_enables_and_warns(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\n")
    monkeypatch.setattr(select, "KALLSYMS", kallsyms)
    monkeypatch.setenv(select.TRUST_ENV, "1")  # the stand-in is patched; the host's kallsyms says otherwise
    memory = GuestMemory()
    memory.add_ram(0, RAM)
    kernel = PatchedKernelStandIn("v12")
    vcpu = FakeVcpu(kernel)
    log = io.StringIO()
    policy = exit_policy()
    host = SimpleNamespace(
        kvm=None, vm_fd=VM_FD, vcpus=[vcpu], memory=memory, control=RunControl([]), log=log, claim=policy.claim
    )
    try:
        spp = attach_kernel_backend(host, "v12", ioctl=kernel)
        assert spp.backend.name == "kernel:v12"
        assert 29 in policy._claims and kernel.enabled
        assert log.getvalue().startswith("pyvmm: warning: the running kernel does not look SPP-patched")
        spp.protect(PAGE, 0)
        assert kernel.access[PAGE >> 12] == 0
        with pytest.raises(ConfigError, match="--spp-abi"):
            attach_kernel_backend(host, None, ioctl=kernel)
    finally:
        memory.close()


# --- helpers ---------------------------------------------------------------------------------
def _exit(rig: Rig, addr: int, insn_len: int) -> Any:
    rig.vcpu.spp_exit(rig.backend.profile.exit_reason, addr, insn_len)
    return rig.vcpu.kvm_run


def _saved_events(rig: Rig) -> Any:
    ev: Any = ffi.new("struct kvm_vcpu_events *")
    ffi.memmove(ev, rig.kernel.saved[(VCPU_FD, "struct kvm_vcpu_events")], ffi.sizeof(ev[0]))
    return ev
