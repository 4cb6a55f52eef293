"""The README's "What each backend gives" table, cell by cell: one 8-byte store into a denied
sub-page, each verdict under the software engine (on the fake host of test_spp_software_engine),
kernel:v12 and kernel:rfc-v1 (against the stand-in for the patched kernel of
test_spp_kernel_backend: no host runs that patch). What the CPU does after the exit is played
here: on v12, an instruction left with RIP on it runs again where the kernel's mask now allows its
write (or the page was opened for a single step), writing the guest's bytes, moving RIP past it,
and ending the step with a DEBUG exit. Each cell is then read back as words from what happened to
memory, RIP, the masks, the injected event, the log and the run's status."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kvm_abi import constants as kc
from kvm_abi.spp import FULL_ACCESS
from tests.fakes import mmio_exit
from tests.unit.test_spp_kernel_backend import RIP as KERNEL_RIP
from tests.unit.test_spp_kernel_backend import Rig as KernelRig
from tests.unit.test_spp_kernel_backend import _saved_events
from tests.unit.test_spp_software_engine import EngineVcpu, FakeHost
from vmm.spp.controller import Spp
from vmm.spp.event import Allow, AllowAndUnprotect, Deny, Inject, SppVerdict, StopVm, WriteInstead
from vmm.spp.software import SoftwareSpp
from vmm.verdict import Stop

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| verdict | software | kernel:v12 | kernel:rfc-v1 |"
BACKENDS = ("software", "kernel:v12", "kernel:rfc-v1")
PAGE = 0x10000
MASK = 0xFFFFFFFD  # sub-page 1 denied
ADDR = PAGE + 0x90
GUEST = bytes(range(0x41, 0x49))  # what the guest stores
FILL = b"\x5a" * 8
STORE = bytes.fromhex("4c8917")  # mov [rdi], r10: the store, 3 bytes
CODE = 0x8000


def table() -> list[tuple[str, dict[str, str]]]:
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0].strip("`"), dict(zip(BACKENDS, cells[1:], strict=True))))
    return rows


ROWS = table()
NAMES = {"Deny": Deny, "Allow": Allow, "AllowAndUnprotect": AllowAndUnprotect, "WriteInstead": WriteInstead}
NAMES |= {"StopVm": StopVm, "Inject": Inject}


def verdict_of(text: str) -> SppVerdict:
    verdict: SppVerdict = eval(text, {"__builtins__": {}}, NAMES)
    return verdict


@dataclass
class Seen:
    """What one verdict did, in the table's words."""

    memory: bytes
    rip_after: bool | None  # None: the run stopped
    unprotected: bool
    warned: bool
    status: int | None
    exception: tuple[int, int | None] | None = None  # (vector, error code or None)
    replacement: bytes | None = None

    def text(self) -> str:
        if self.status is not None:
            return f"status {self.status}"
        replaced = "replaced" if self.memory == self.replacement else "?"
        out = [{GUEST: "written", FILL: "dropped"}.get(self.memory, replaced)]
        if self.unprotected:
            out.append("unprotected")
        if self.exception is not None:
            vector, code = self.exception
            out.append(f"#{vector} " + ("no error code" if code is None else f"error code {code}"))
        out.append("RIP after" if self.rip_after else "RIP on the instruction")
        if self.warned:
            out.append("warning")
        return ", ".join(out)


class FlatEngineVcpu(EngineVcpu):
    """64-bit mode with identity paging, for decoding the bytes before RIP."""

    def translate(self, gva: int) -> int | None:
        return gva


def software(verdict: SppVerdict) -> Seen:
    host = FakeHost()
    vcpu = FlatEngineVcpu()
    host.vcpus = [vcpu]
    sregs = vcpu.sregs
    sregs.cr0, sregs.efer = 0x80000011, 0x500
    sregs.cs.l, sregs.cs.type, sregs.cs.present, sregs.cs.s = 1, 0xB, 1, 1
    try:
        made: list[SoftwareSpp] = []
        spp = Spp(host, lambda s: made.append(SoftwareSpp(host, s)) or made[0])  # type: ignore[arg-type, func-returns-value]
        spp.add_policy(lambda event: verdict)
        host.memory.write(ADDR, FILL)
        host.memory.write(CODE, STORE)
        spp.protect(PAGE, MASK)
        regs = vcpu.kvm_run.s.regs.regs
        regs.rip, regs.rdi, regs.rflags = CODE + len(STORE), ADDR, 0x202  # KVM retired the store
        vcpu.kvm_run.kvm_dirty_regs = 0
        result = made[0].handle_mmio(mmio_exit(vcpu, ADDR, 8, write=True, data=GUEST))
        ev = vcpu.events
        exception = None
        if ev.exception.injected:
            exception = (int(ev.exception.nr), int(ev.exception.error_code) if ev.exception.has_error_code else None)
        return Seen(
            memory=host.memory.read(ADDR, 8),
            rip_after=int(regs.rip) == CODE + len(STORE),
            unprotected=spp.mask(PAGE) != MASK,
            warned=False,
            status=result.status if isinstance(result, Stop) else None,
            exception=exception,
            replacement=getattr(verdict, "data", None),
        )
    finally:
        host.memory.close()


def kernel(abi: str, verdict: SppVerdict) -> Seen:
    rig = KernelRig(abi)
    try:
        rig.memory.write(ADDR, FILL)
        rig.spp.protect(PAGE, MASK)
        rig.verdict = verdict
        result = rig.fire(ADDR, len(STORE))
        run = rig.vcpu.kvm_run
        if run.kvm_dirty_regs & kc.KVM_SYNC_X86_REGS:
            run.kvm_dirty_regs = 0  # KVM takes the synced registers at the next entry
        raw = _saved_events(rig) if (rig.kernel.saved.get((rig.vcpu.fd, "struct kvm_vcpu_events"))) else None
        injected = raw is not None and bool(raw.exception.injected)
        if abi == "v12" and result is None and rig.vcpu.rip == KERNEL_RIP and not injected:
            # the CPU runs the instruction again: it writes where the kernel's mask lets it
            gfn = PAGE >> 12
            if rig.kernel.access.get(gfn, FULL_ACCESS) >> ((ADDR & 0xFFF) // 128) & 1:
                rig.memory.write(ADDR, GUEST)
                run.s.regs.regs.rip = KERNEL_RIP + len(STORE)
                if rig.kernel.guest_debug & kc.KVM_GUESTDBG_SINGLESTEP:
                    assert rig.debug_exit() is None
        exception = None
        if injected:
            assert raw is not None
            exception = (int(raw.exception.nr), int(raw.exception.error_code) if raw.exception.has_error_code else None)
        return Seen(
            memory=rig.memory.read(ADDR, 8),
            # rfc-v1: the kernel had already moved RIP past the store before exiting
            rip_after=rig.vcpu.rip == KERNEL_RIP + len(STORE) or (abi == "rfc-v1" and rig.vcpu.rip == KERNEL_RIP),
            unprotected=rig.spp.mask(PAGE) != MASK,
            warned="warning" in rig.log.getvalue(),
            status=result.status if isinstance(result, Stop) else None,
            exception=exception,
            replacement=getattr(verdict, "data", None),
        )
    finally:
        rig.close()


def seen(backend: str, verdict: SppVerdict) -> Seen:
    if backend == "software":
        return software(verdict)
    return kernel(backend.removeprefix("kernel:"), verdict)


def test_the_table_has_every_verdict_kind() -> None:
    kinds = {type(verdict_of(v)) for v, _ in ROWS}
    assert kinds == {Deny, Allow, AllowAndUnprotect, WriteInstead, StopVm, Inject}


@pytest.mark.parametrize(("verdict", "backend"), [(v, b) for v, _ in ROWS for b in BACKENDS])
def test_cell(verdict: str, backend: str) -> None:
    want = dict(ROWS)[verdict][backend]
    assert seen(backend, verdict_of(verdict)).text() == want
