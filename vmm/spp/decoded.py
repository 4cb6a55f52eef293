"""What an instruction KVM could not emulate touches: decoded from the bytes KVM hands over with
the emulation failure and the vCPU's registers (vmm.x86), so the engine can tell a failure that is
SPP's (a store into a trapped page) from one that would happen with nothing protected."""

from __future__ import annotations

from typing import Any, Protocol

from kvm_abi import ffi
from vmm.spp.masks import PAGE
from vmm.x86 import CpuState, Instruction, MemoryWrite, X87Update, decode, decoding_state

MAX_SPAN = 1 << 20  # bytes of operand span walked page by page

class DecodingVcpu(Protocol):
    def get_regs(self) -> Any: ...
    def get_sregs(self) -> Any: ...
    def translate(self, gva: int) -> int | None: ...


def decode_failed_instruction(vcpu: DecodingVcpu, insn_bytes: bytes | None) -> Instruction | None:
    """The instruction KVM failed on, or None when KVM gave no bytes or they do not decode."""
    if not insn_bytes:
        return None
    return decode(insn_bytes, decoding_state(vcpu.get_regs(), vcpu.get_sregs()))


def touches_trapped_page(vcpu: DecodingVcpu, insn: Instruction, trapped: frozenset[int]) -> bool:
    """Whether any memory operand of `insn` may reach a trapped page (reads included: a read KVM
    cannot complete from a read-only slot is SPP's too). Linear addresses are translated through
    the guest's page tables; an unmapped one reaches no page."""
    for operand in insn.memory:
        start, end = operand.span
        if end - start > MAX_SPAN:
            return True  # a long string operation: not worth walking, take it as SPP's
        page = start & ~(PAGE - 1)
        while page < end:
            gpa = vcpu.translate(page)
            if gpa is not None and (gpa & ~(PAGE - 1)) in trapped:
                return True
            page += PAGE
    return False


class EmulatingVcpu(DecodingVcpu, Protocol):
    def get_xsave(self) -> Any: ...
    def get_xcrs(self) -> Any: ...


def full_state(vcpu: EmulatingVcpu) -> CpuState:
    """Registers, segments, XMM/YMM and x87 state (KVM_GET_XSAVE) and XCR0 (KVM_GET_XCRS)."""
    xsave = vcpu.get_xsave()
    region = bytes(ffi.buffer(xsave.region))
    xcrs = vcpu.get_xcrs()
    xcr0 = next((int(xcrs.xcrs[i].value) for i in range(int(xcrs.nr_xcrs)) if int(xcrs.xcrs[i].xcr) == 0), None)
    return CpuState.from_kvm(vcpu.get_regs(), vcpu.get_sregs(), xsave_region=region, xcr0=xcr0)


def physical_fragments(vcpu: DecodingVcpu, writes: tuple[MemoryWrite, ...]) -> list[tuple[int, bytes]] | None:
    """The effect's writes as guest-physical fragments, split at page boundaries, in CPU order;
    None if a page is not mapped (the CPU would have faulted: not the engine's to guess)."""
    out: list[tuple[int, bytes]] = []
    for w in writes:
        pos = 0
        while pos < len(w.data):
            linear = w.linear + pos
            n = min(len(w.data) - pos, PAGE - (linear & (PAGE - 1)))
            gpa = vcpu.translate(linear)
            if gpa is None:
                return None
            out.append((gpa, w.data[pos : pos + n]))
            pos += n
    return out


class X87Vcpu(Protocol):
    def get_xsave(self) -> Any: ...
    def set_xsave(self, xsave: Any) -> None: ...


def apply_x87(vcpu: X87Vcpu, update: X87Update) -> None:
    """Write an x87 store's effect (status word, abridged tags, the registers in stack order,
    last-instruction pointers) into the XSAVE legacy region (64-bit FXSAVE layout) and back."""
    xsave = vcpu.get_xsave()
    region = ffi.cast("unsigned char *", xsave.region)

    def put(offset: int, value: int | bytes, size: int = 0) -> None:
        data = value if isinstance(value, bytes) else value.to_bytes(size, "little")
        for i, b in enumerate(data):
            region[offset + i] = b

    put(2, update.fsw, 2)
    put(4, update.ftw, 1)
    put(6, update.pointers.fop, 2)
    put(8, update.pointers.fip, 8)
    put(16, update.pointers.fdp, 8)
    for i, st in enumerate(update.st):
        put(32 + 16 * i, st)
    vcpu.set_xsave(xsave)
