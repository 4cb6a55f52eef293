"""The kernel SPP backend: sub-page protection enforced by a kernel that runs the (unmerged) SPP patch.

Two ABI profiles are supported, named as in `kvm_abi.spp`:

rfc-v1  The patch in shared/seed (Zhang Yi, Oct 2017). The exit is 28 with `spp { __u64 addr; }`;
        `addr` is the faulting guest-physical address. Before exiting, the kernel has already
        dropped the write and skipped the instruction, so RIP is past it. SET/GET_ACCESS take
        `{base_gfn u64, npages u64, access_map u32[128]}` (528 bytes). That size comes from the
        RFC v2 code: v1's SUBPAGE_MAX_BITMAP was never confirmed. The kernel also applies
        access_map[0] to every page of a call, so a call only ever covers pages that share one
        mask. SPP is switched on by the kvm_intel module parameter `spp=1`, so there is nothing
        to call here.

v12     The last posting (May 2020). The exit is 29 with `spp { __u64 addr; __u8 insn_len; }`, and
        RIP is left ON the write: re-entering unchanged repeats the exit forever, so the backend
        either moves RIP past the instruction or makes the write possible. SET/GET_ACCESS take
        `{gfn_base u64, npages u32, flags u32 (0), access_map u32[npages]}`, with at most 512
        pages per call. SPP is switched on by KVM_ENABLE_CAP(182) on the vm fd, after the vCPUs
        exist.

What `addr` means on v12, and how this backend tells: the EPT-violation path stores the faulting
GPA, while the instruction-emulator path stores a page *number* (gfn). The exit does not say
which path it came from, so the mask table decides, in this order:
  1. the page containing `addr` is protected and `addr`'s sub-page is denied: a GPA (EPT path),
     since the hardware only faults on denied sub-pages;
  2. page `addr << 12` is protected: a gfn (emulator path; its check is page-granular);
  3. the page containing `addr` is protected: a GPA from an access that starts in an allowed
     sub-page and runs into a denied one;
  4. otherwise (the table changed under the exit): a GPA.
The only ambiguous case is a value that is both a denied GPA and the number of a protected page
(for example 0x10 with both page 0x0 and page 0x10000 protected). Rule 1 reads it as a GPA,
because the EPT path is by far the common one. An emulator-path event knows only the page: its
`gpa` is the page's first denied byte and `write_gpa` is None.

The exit numbers alias mainline ones (28 = KVM_EXIT_ARM_NISV, 29 = KVM_EXIT_X86_RDMSR, capability
182 = KVM_CAP_HALT_POLL), and a stock kernel cannot be asked safely whether it has the patch.
So this backend is built only when the user names it (`--spp-backend kernel --spp-abi ...`);
see vmm.spp.select.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from kvm_abi import CData, ffi, ioctls
from kvm_abi import constants as kc
from kvm_abi.spp import FULL_ACCESS, AddrUnit, SppProfile, profile, spp_ffi
from vmm.errors import ConfigError, ExitStatus, KvmCallFailed, RunError
from vmm.kvm.calls import new, raw_ioctl
from vmm.kvm.exits import DebugExit, Exit
from vmm.runner.policy import PASS, Pass
from vmm.spp.event import Backend, InjectRip, SppEvent, SppVerdict
from vmm.spp.masks import PAGE, MaskTable, subpage_of
from vmm.spp.verdicts import carry_out, inject_exception, unavailable
from vmm.verdict import Stop, Verdict

SUPPORTED_ABIS = ("rfc-v1", "v12")
PAGE_SHIFT = 12
MAX_INSN_LEN = 15  # the architectural limit of one x86 instruction
MAX_GFN = 1 << (52 - PAGE_SHIFT)  # physical addresses have at most 52 bits: a larger addr is no gfn
DB_VECTOR = 1

IoctlFn = Callable[[int, int, Any], int]  # (fd, request, arg) -> result, or -errno (vmm.kvm.calls.raw_ioctl)


class KernelVcpu(Protocol):
    """What the backend needs of a vCPU: its index, its kvm_run page, and the vCPU contract's
    register, event and guest-debug calls (`vmm.kvm.vcpu.Vcpu`)."""

    @property
    def index(self) -> int: ...
    @property
    def kvm_run(self) -> Any: ...
    def get_regs(self) -> Any: ...
    def set_regs(self, regs: Any) -> None: ...
    def get_sregs(self) -> Any: ...
    def set_sregs(self, sregs: Any) -> None: ...
    def get_vcpu_events(self) -> Any: ...
    def set_vcpu_events(self, ev: Any) -> None: ...
    def set_guest_debug(self, control: int, debugreg: list[int] | None = None) -> None: ...


class MemoryLike(Protocol):
    def write(self, gpa: int, data: bytes) -> None: ...


class Controller(Protocol):
    """The part of `vmm.spp.controller.Spp` this backend uses."""

    table: MaskTable

    def judge(self, event: SppEvent) -> SppVerdict: ...

    def protect(self, gpa: int, mask: int = 0, npages: int = 1) -> None: ...


class ExitClaims(Protocol):
    """Where the backend takes its exits (`ExitPolicy.claim`, through the SPP host)."""

    def claim(self, kind: type[Exit] | int, claim: Callable[[Any], Any]) -> None: ...


class KernelSpp:
    """The SppBackend for a patched kernel; one instance per VM.

    `abi` is "rfc-v1" or "v12". `vm_fd` receives SET/GET_ACCESS and ENABLE_CAP. `vcpus` are the
    VM's vCPUs (v12 refuses to enable SPP without them). `memory` is written for WriteInstead;
    the monitor's writes go through the host mapping and are never blocked. Give either
    `controller` (normally the `Spp` that owns this backend: its table, its judge(), and its
    protect() for AllowAndUnprotect) or a bare `table` and `judge`; without a controller, table
    updates are applied here directly. `ioctl` is the VM-level call for the patch's own ioctls
    (SET/GET_ACCESS, ENABLE_CAP) and defaults to the real one; unit tests pass a stand-in for the
    patched kernel. One-time warnings go to `log`.
    """

    def __init__(
        self,
        abi: str,
        *,
        vm_fd: int,
        vcpus: Sequence[KernelVcpu],
        memory: MemoryLike,
        controller: Controller | None = None,
        table: MaskTable | None = None,
        judge: Callable[[SppEvent], SppVerdict] | None = None,
        ioctl: IoctlFn = raw_ioctl,
        log: TextIO | None = None,
    ) -> None:
        if abi not in SUPPORTED_ABIS:
            raise ConfigError(f"the kernel SPP backend supports --spp-abi {' or '.join(SUPPORTED_ABIS)}, not {abi!r}")
        if controller is not None:
            table, judge = controller.table, controller.judge
        if table is None or judge is None:
            raise ConfigError("KernelSpp needs a controller, or both a mask table and a judge")
        self.profile: SppProfile = profile(abi)
        self.name = f"kernel:{abi}"
        self._event_backend: Backend = "kernel:rfc-v1" if abi == "rfc-v1" else "kernel:v12"
        self.vm_fd = vm_fd
        self.vcpus = vcpus
        self.memory = memory
        self.controller = controller
        self.table = table
        self.judge = judge
        self.log = log if log is not None else sys.stderr
        self._ioctl = ioctl
        self._warned: set[str] = set()
        self._exit_ptr_type = self.profile.exit_struct + " *"
        self._insn_len_field = self.profile.insn_len_field
        # v12 Allow: vCPU index -> pages temporarily opened to every write while that vCPU
        # single-steps the faulting instruction (see _OnInstruction.allow).
        self._steps: dict[int, set[int]] = {}
        self.enabled = False

    # --- setup -------------------------------------------------------------------------------
    def enable(self) -> None:
        """Switch SPP on for this VM, the way the profile's kernel expects.

        rfc-v1: nothing to call; the kvm_intel module parameter `spp=1` decides.
        v12: KVM_ENABLE_CAP(182) on the vm fd, after the vCPUs exist (the patch takes the SPPT
        root from them). A stock kernel reads 182 as KVM_CAP_HALT_POLL and accepts it: that
        call cannot tell a patched kernel from a stock one. The first SET_ACCESS can, and it
        fails with a message that says so.
        """
        cap = self.profile.cap
        if cap is None:
            self.enabled = True
            return
        if not self.vcpus:
            raise ConfigError(f"{self.name}: create the vCPUs before enabling SPP (the patch needs them)")
        ec = new("struct kvm_enable_cap *")
        ec.cap = cap
        rc = self._ioctl(self.vm_fd, ioctls.KVM_ENABLE_CAP, ec)
        if rc < 0:
            why = {
                errno.ENODEV: "the CPU lacks the SPP control, or EPT is off",
                errno.EPERM: "SPP is exclusive with nested virtualization (kvm_intel nested=1)",
            }.get(-rc, os.strerror(-rc))
            raise KvmCallFailed(f"{self.name}: KVM_ENABLE_CAP({cap}) to turn SPP on ({why})", -rc)
        self.enabled = True

    def register(self, claims: ExitClaims) -> None:
        """Take the profile's exit reason; v12 also looks at DEBUG exits, to finish single-steps."""
        claims.claim(self.profile.exit_reason, self.handle_exit)
        if not self.profile.kernel_skips_instruction:
            claims.claim(DebugExit, self._on_debug)

    # The kernel reports every violation as an exit, so there is nothing to watch for.
    def run_started(self) -> None:
        pass

    def on_kick(self, vcpu: Any) -> Verdict:
        return None

    def run_ended(self) -> None:
        # The run loop has ended: a single-step still pending will not be finished by a DEBUG
        # exit, so close the pages it opened now. This runs while the run's result is being
        # reported, so a failure here is a warning rather than an exception that would hide it.
        for index in list(self._steps):
            try:
                self._end_step(index, self._vcpu(index))
            except KvmCallFailed as e:
                self.log.write(f"pyvmm: warning: {e}\n")

    # --- SET/GET_ACCESS ----------------------------------------------------------------------
    def apply(self, pages: list[int]) -> None:
        """SET_ACCESS the table's masks for `pages`: one call per run of consecutive pages with
        the same mask, at most the profile's maximum pages each. Pages a pending single-step
        opened are skipped; the step restores them from the table when it ends."""
        stepping: set[int] = set()
        for opened in self._steps.values():
            stepping |= opened
        self._set_access([p for p in sorted(set(pages)) if p not in stepping], self.table.get)

    def _set_access(self, pages: list[int], mask_of: Callable[[int], int]) -> None:
        for first, npages, mask in _runs(pages, mask_of, self.profile.max_pages):
            buf, _ = self._subpage_buffer(first, [mask] * npages)
            rc = self._ioctl(self.vm_fd, self.profile.ioctl_set_access, buf)
            if rc < 0:
                raise self._access_error("SET_ACCESS", first, npages, -rc, mask)

    def get_access(self, gpa: int, npages: int = 1) -> list[int]:
        """The kernel's masks for `npages` pages from `gpa` (GET_ACCESS), to check what it holds."""
        out: list[int] = []
        first = gpa & ~(PAGE - 1)
        while npages > 0:
            n = min(npages, self.profile.max_pages)
            buf, sub = self._subpage_buffer(first, [0] * n)
            rc = self._ioctl(self.vm_fd, self.profile.ioctl_get_access, buf)
            if rc < 0:
                raise self._access_error("GET_ACCESS", first, n, -rc)
            out += [int(sub.access_map[i]) for i in range(n)]
            first += n * PAGE
            npages -= n
        return out

    def _subpage_buffer(self, first: int, masks: list[int]) -> tuple[Any, Any]:
        """The profile's kvm_subpage for pages from `first`: (owning buffer, typed view)."""
        p = self.profile
        size = p.subpage_buffer_size(len(masks))
        buf = spp_ffi.new("char[]", size)
        sub: CData = spp_ffi.cast(p.subpage_struct + " *", buf)
        gfn_field, npages_field = p.subpage_fields[0], p.subpage_fields[1]
        setattr(sub, gfn_field, first >> PAGE_SHIFT)
        setattr(sub, npages_field, len(masks))
        if "flags" in p.subpage_fields:
            sub.flags = 0  # v8+: must be 0, the kernel refuses anything else
        for i, m in enumerate(masks):
            sub.access_map[i] = m
        return buf, sub

    def _access_error(self, call: str, first: int, npages: int, err: int, mask: int | None = None) -> KvmCallFailed:
        what = f"page {first:#x}" + (f" (+{npages - 1} more)" if npages > 1 else "")
        if mask is not None:
            what += f", mask {mask:#010x}"
        if err == errno.ENOTTY:
            what += "; the kernel does not know this ioctl: it is not SPP-patched"
        return KvmCallFailed(f"{self.name}: KVM_SUBPAGES_{call} for {what}", err)

    # --- the exit ----------------------------------------------------------------------------
    def decode(self, kvm_run: Any, vcpu: int = 0) -> SppEvent:
        """The SppEvent for the SPP exit in `kvm_run` (reported for vCPU number `vcpu`)."""
        return self._decode(kvm_run, vcpu)[0]

    def _read(self, kvm_run: Any) -> tuple[int, int | None]:
        """(addr, insn_len) from the profile's exit struct, cast at its offset in the run page.

        Mainline `struct kvm_run` has no SPP member and must not get one: the union slot means
        something else to a stock kernel. The member is read through the patch's own layout.
        """
        base = ffi.cast("char *", kvm_run) + self.profile.addr_offset
        ex: CData = spp_ffi.cast(self._exit_ptr_type, base)
        insn_len = int(getattr(ex, self._insn_len_field)) if self._insn_len_field else None
        return int(ex.addr), insn_len

    def _decode(self, kvm_run: Any, vcpu: int) -> tuple[SppEvent, bool, int | None]:
        """(event, whether it came from the emulator path, insn_len)."""
        addr, insn_len = self._read(kvm_run)
        table = self.table
        emulated = False
        page = addr & ~(PAGE - 1)
        gpa = addr
        write_gpa: int | None = addr
        if self.profile.emulator_addr is AddrUnit.GFN and not _denied(table, addr):
            gfn_page = addr << PAGE_SHIFT
            if addr < MAX_GFN and table.get(gfn_page) != FULL_ACCESS:  # rule 2 of the module docstring
                emulated = True
                page = gfn_page
                gpa = next(table.denied_ranges(page), (page, page))[0]
                write_gpa = None
        if not emulated and not _denied(table, gpa):
            # an access that starts in an allowed sub-page: name its first denied byte (rule 3)
            first = table.first_denied(addr, page + PAGE - addr)
            gpa = addr if first is None else first
        rip: int | None = None
        if kvm_run.kvm_valid_regs & kc.KVM_SYNC_X86_REGS:
            rip = int(kvm_run.s.regs.regs.rip)
        event = SppEvent(gpa, table.get(page), vcpu, rip, self._event_backend, write_gpa)
        return event, emulated, insn_len

    def handle_exit(self, ex: Exit) -> Verdict:
        """Decode the exit, ask judge(), and carry the verdict out for the profile."""
        vcpu = self._vcpu(ex.vcpu.index)
        if vcpu is None:
            raise RunError(f"{self.name}: an SPP exit from vCPU {ex.vcpu.index}, which this backend was not given")
        event, emulated, insn_len = self._decode(vcpu.kvm_run, vcpu.index)
        verdict = self.judge(event)
        executor: _Skipped | _OnInstruction
        if self.profile.kernel_skips_instruction:
            executor = _Skipped(self, vcpu)
        else:
            executor = _OnInstruction(self, vcpu, emulated, insn_len)
        return carry_out(verdict, event, executor)

    # --- what the executors share -------------------------------------------------------------
    def _skip(self, vcpu: KernelVcpu, insn_len: int | None, event: SppEvent) -> Verdict:
        """Move RIP past the faulting instruction: through sync regs when KVM filled them (no
        ioctl), else with GET/SET_REGS. insn_len comes from VM_EXIT_INSTRUCTION_LEN; a value no
        instruction can have means the kernel gave no usable length, and guessing would resume
        the guest in the middle of an instruction."""
        if insn_len is None or not 1 <= insn_len <= MAX_INSN_LEN:
            return Stop(
                ExitStatus.SPP_UNENFORCEABLE,
                f"the SPP exit's instruction length {insn_len} is not a valid x86 length, so the write "
                f"cannot be skipped: {event.describe()}",
                fatal=True,
            )
        run = vcpu.kvm_run
        if run.kvm_valid_regs & kc.KVM_SYNC_X86_REGS:
            regs = run.s.regs.regs
            regs.rip = (regs.rip + insn_len) & 0xFFFFFFFFFFFFFFFF
            run.kvm_dirty_regs |= kc.KVM_SYNC_X86_REGS  # KVM loads the GPRs from here at the next KVM_RUN
            return None
        kregs = vcpu.get_regs()
        kregs.rip = (kregs.rip + insn_len) & 0xFFFFFFFFFFFFFFFF
        vcpu.set_regs(kregs)
        return None

    def _unprotect(self, event: SppEvent, scope: str) -> None:
        """Open the event's sub-page (or whole page) in the table, which issues SET_ACCESS."""
        page = event.page
        before = self.table.get(page)
        mask = FULL_ACCESS if scope == "page" else before | 1 << subpage_of(event.gpa)
        if self.controller is not None:
            self.controller.protect(page, mask)
        else:
            self.table.set(page, mask)
        if self.controller is None or mask == before:
            # no controller to apply it, or the table already said so and the kernel disagrees:
            # send the mask anyway, or the exit would come back unchanged
            self.apply([page])

    def _allow_by_stepping(self, vcpu: KernelVcpu, page: int) -> Verdict:
        """Let one write through while keeping the protection, without re-entering the run loop.

        State machine, per vCPU: idle -> (Allow) page set to FULL in the kernel only (the table
        keeps the real mask) and single-step armed, resume -> (the DEBUG exit after the one
        instruction, in _on_debug) the page's mask restored from the table, single-step
        disarmed -> idle. Any other exits in between pass through the exit policy as usual. An
        instruction that writes a second protected page exits again while stepping; that page
        joins the open set.
        """
        pages = self._steps.get(vcpu.index)
        if pages is not None and page in pages:
            self._end_step(vcpu.index, vcpu)
            return Stop(
                ExitStatus.SPP_UNENFORCEABLE,
                f"page {page:#x} faulted again while SET_ACCESS had made it writable for a single-step; "
                "the kernel is not applying the masks it is given",
                fatal=True,
            )
        self._set_access([page], lambda p: FULL_ACCESS)
        if pages is None:
            try:
                vcpu.set_guest_debug(kc.KVM_GUESTDBG_ENABLE | kc.KVM_GUESTDBG_SINGLESTEP)
            except KvmCallFailed:
                self._set_access([page], self.table.get)  # never leave the page open unwatched
                raise
            pages = self._steps[vcpu.index] = set()
        pages.add(page)
        return None

    def _on_debug(self, ex: DebugExit) -> Verdict | Pass:
        if ex.vcpu.index in self._steps and ex.exception == DB_VECTOR:
            self._end_step(ex.vcpu.index, self._vcpu(ex.vcpu.index))
            return None
        return PASS

    def _end_step(self, index: int, vcpu: KernelVcpu | None) -> None:
        pages = self._steps.pop(index, None)
        if pages is None:
            return
        if vcpu is not None:
            vcpu.set_guest_debug(0)
        self._set_access(sorted(pages), self.table.get)

    def _vcpu(self, index: int) -> KernelVcpu | None:
        return next((v for v in self.vcpus if v.index == index), None)

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log.write(f"pyvmm: warning: SPP {self.name}: {text}\n")


class _Skipped:
    """rfc-v1's executor: the kernel has dropped the write and put RIP past the instruction.

    Deny: resume. Allow: the exit carries neither the data nor the size, so the write cannot be
    replayed; it is treated as Deny, with a warning the first time. AllowAndUnprotect: the
    protection goes (SET_ACCESS through the controller), but this write stays dropped (warned
    once). WriteInstead: its data is written at the address through the host mapping. Inject:
    the exception is raised with RIP already after the write (trap-like).
    """

    def __init__(self, backend: KernelSpp, vcpu: KernelVcpu) -> None:
        self.backend = backend
        self.vcpu = vcpu

    def deny(self, event: SppEvent) -> Verdict:
        return None

    def allow(self, event: SppEvent) -> Verdict:
        self.backend._warn_once(
            "allow",
            "Allow cannot replay a write under rfc-v1: the kernel dropped it and skipped the "
            "instruction, and the exit reports neither data nor size; treating Allow as Deny",
        )
        return None

    def allow_and_unprotect(self, event: SppEvent, scope: str) -> Verdict:
        self.backend._unprotect(event, scope)
        self.backend._warn_once(
            "unprotect",
            "AllowAndUnprotect under rfc-v1 lifts the protection, but the write that caused the "
            "exit stays dropped (the kernel skipped it and the exit does not carry its data)",
        )
        return None

    def write_instead(self, event: SppEvent, data: bytes) -> Verdict:
        self.backend.memory.write(_target(event), data)
        return None

    def inject(self, event: SppEvent, vector: int, error_code: int | None, rip: InjectRip | None) -> Verdict:
        if rip == "instruction":
            return unavailable(
                event,
                "Inject(..., rip='instruction') under rfc-v1: the kernel has already moved RIP past "
                "the instruction and the exit does not give its length",
            )
        # CR2 gets the guest-physical address: the linear one is not in the exit
        inject_exception(self.vcpu, vector, error_code, event.gpa)
        return None


class _OnInstruction:
    """v12's executor: RIP is on the write, which has not happened.

    Deny: RIP += insn_len. Allow: the page is opened, the one instruction single-steps, and the
    page closes again at the DEBUG exit. AllowAndUnprotect: the table loses the protection and the
    instruction re-executes (stepped as for Allow when the emulator path still sees a protected
    page). WriteInstead: its data is written through the host mapping, then RIP += insn_len.
    Inject: the exception is raised with RIP still on the instruction (fault-like), or after it
    (RIP += insn_len first) with rip="after".
    """

    def __init__(self, backend: KernelSpp, vcpu: KernelVcpu, emulated: bool, insn_len: int | None) -> None:
        self.backend = backend
        self.vcpu = vcpu
        self.emulated = emulated
        self.insn_len = insn_len

    def _moot_step(self) -> None:
        # The write will not complete as the guest issued it: a single-step begun for another
        # page this instruction writes is moot, and its page closes now.
        self.backend._end_step(self.vcpu.index, self.vcpu)

    def deny(self, event: SppEvent) -> Verdict:
        self._moot_step()
        return self.backend._skip(self.vcpu, self.insn_len, event)

    def allow(self, event: SppEvent) -> Verdict:
        return self.backend._allow_by_stepping(self.vcpu, event.page)

    def allow_and_unprotect(self, event: SppEvent, scope: str) -> Verdict:
        self.backend._unprotect(event, scope)
        if not self.emulated:  # the denied sub-page is open now: the re-executed write succeeds
            return None
        if self.backend.table.get(event.page) == FULL_ACCESS:
            return None
        return self.backend._allow_by_stepping(self.vcpu, event.page)

    def write_instead(self, event: SppEvent, data: bytes) -> Verdict:
        self._moot_step()
        if self.emulated:
            return Stop(
                ExitStatus.SPP_UNENFORCEABLE,
                f"WriteInstead needs the write's address, and the emulator path reports only the page: "
                f"{event.describe()}",
                fatal=True,
            )
        self.backend.memory.write(_target(event), data)
        return self.backend._skip(self.vcpu, self.insn_len, event)

    def inject(self, event: SppEvent, vector: int, error_code: int | None, rip: InjectRip | None) -> Verdict:
        self._moot_step()
        if rip == "after":  # trap-like on request: past the instruction first
            skipped = self.backend._skip(self.vcpu, self.insn_len, event)
            if skipped is not None:
                return skipped
        inject_exception(self.vcpu, vector, error_code, event.gpa)
        return None


def _denied(table: MaskTable, gpa: int) -> bool:
    mask = table.get(gpa & ~(PAGE - 1))
    return mask != FULL_ACCESS and not mask >> subpage_of(gpa) & 1


def _target(event: SppEvent) -> int:
    return event.write_gpa if event.write_gpa is not None else event.gpa


def _runs(pages: list[int], mask_of: Callable[[int], int], limit: int) -> list[tuple[int, int, int]]:
    """(first page, page count, mask) for each run of consecutive sorted `pages` sharing a mask,
    split at `limit` pages."""
    runs: list[tuple[int, int, int]] = []
    for page in pages:
        mask = mask_of(page)
        if runs:
            first, n, m = runs[-1]
            if m == mask and page == first + n * PAGE and n < limit:
                runs[-1] = (first, n + 1, m)
                continue
        runs.append((page, 1, mask))
    return runs


def attach_kernel_backend(host: Any, abi: str | None, *, ioctl: IoctlFn = raw_ioctl) -> Any:
    """Build the controller with a KernelSpp on `host` (an SppHost that also names the VM's fd
    and KVM): check the choice (and log its warning), take the exit reason on the host's exit
    policy, and switch SPP on."""
    from vmm.spp.choice import choose_backend
    from vmm.spp.controller import Spp

    _, why = choose_backend("kernel", abi, host.kvm)
    for line in why.splitlines():
        if line.startswith("warning:"):
            host.log.write(f"pyvmm: {line}\n")
    assert abi is not None  # choose_backend refused a missing ABI
    made: list[KernelSpp] = []

    def make(spp: Spp) -> KernelSpp:
        backend = KernelSpp(abi, vm_fd=host.vm_fd, vcpus=host.vcpus, memory=host.memory,
                            controller=spp, ioctl=ioctl, log=host.log)  # fmt: skip
        made.append(backend)
        return backend

    spp = Spp(host, make)
    made[0].register(host)
    made[0].enable()
    return spp
