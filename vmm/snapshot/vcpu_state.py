"""One vCPU's whole state, captured and put back through the `Vcpu` wrapper's raw-state calls.

Capture order matters: the MP state is read first, because KVM_GET_MP_STATE makes KVM accept
pending INIT and SIPI events, which change the registers read after it. Restore order follows
the dependencies KVM has: special registers (APIC base, EFER) before the MSRs, the LAPIC before
the TSC deadline MSR (KVM ignores a deadline unless the LAPIC timer is in TSC-deadline mode), the
MP state and pending events last.

The TSC deadline is moved with the TSC: where KVM does not take the saved TSC back (the project's
hosts accept the IA32_TSC write and leave the TSC where it is, so it runs on through the time a
snapshot spent saved), a deadline written as saved would lie in the past and fire at once; it is
written as far ahead of the TSC now as it was of the TSC then.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kvm_abi import constants as kc
from kvm_abi import ffi
from vmm.kvm.vcpu import Vcpu

MSR_IA32_TSC = 0x10
MSR_IA32_TSC_DEADLINE = 0x6E0
_MSR_ENTRY = struct.Struct("<IIQ")  # struct kvm_msr_entry: index, reserved, data
# From the declaration, not written out: 0x18, once here, is the `smi` struct, and an AP waiting
# for its SIPI was saved as "in SMM", which KVM refuses together with INIT_RECEIVED.
_EVENTS_FLAGS = ffi.offsetof("struct kvm_vcpu_events", "flags")

# The state moved as kernel structs, in restore order; the LAPIC is there only with an irqchip.
EARLY_KINDS = ("sregs", "regs", "xsave", "xcrs")
LATE_KINDS = ("events", "debugregs")


@dataclass(frozen=True)
class VcpuSnapshot:
    index: int
    mp_state: int
    raw: dict[str, bytes]  # RAW_STATE kind -> the kernel's struct
    msrs: bytes  # kvm_msr_entry array: every MSR KVM lists and reads, the TSC deadline excepted
    late_msrs: bytes  # the TSC deadline, set after the LAPIC
    cpuid: bytes  # the vCPU's CPUID table (KVM_GET_CPUID2)

    def msr_values(self) -> dict[int, int]:
        out = {}
        for raw in (self.msrs, self.late_msrs):
            for index, _, data in _MSR_ENTRY.iter_unpack(raw):
                out[index] = data
        return out


def capture_vcpu(vcpu: Vcpu, msr_indices: list[int], *, irqchip: bool) -> VcpuSnapshot:
    """The vCPU must be outside KVM_RUN with nothing pending from its last exit."""
    mp_state = vcpu.get_mp_state()  # first: see the module docstring
    raw = {kind: vcpu.get_raw(kind) for kind in (*EARLY_KINDS, *LATE_KINDS)}
    if irqchip:
        raw["lapic"] = vcpu.get_raw("lapic")
    early = [i for i in msr_indices if i != MSR_IA32_TSC_DEADLINE]
    late = [i for i in msr_indices if i == MSR_IA32_TSC_DEADLINE]
    raw["events"] = _events_for_restore(raw["events"], mp_state)
    return VcpuSnapshot(
        vcpu.index, mp_state, raw, vcpu.get_msrs_raw(early), vcpu.get_msrs_raw(late) if late else b"", vcpu.get_cpuid()
    )


def _events_for_restore(events: bytes, mp_state: int) -> bytes:
    """KVM never reports the SIPI vector as valid in the events it returns; an AP that waits for
    its SIPI gets the flag set, so KVM_SET_VCPU_EVENTS takes the (zero) vector as its own."""
    if mp_state not in (kc.KVM_MP_STATE_INIT_RECEIVED, kc.KVM_MP_STATE_SIPI_RECEIVED):
        return events
    (flags,) = struct.unpack_from("<I", events, _EVENTS_FLAGS)
    out = bytearray(events)
    struct.pack_into("<I", out, _EVENTS_FLAGS, flags | kc.KVM_VCPUEVENT_VALID_SIPI_VECTOR)
    return bytes(out)


def restore_vcpu(vcpu: Vcpu, snap: VcpuSnapshot) -> None:
    """Ten ioctls at most (nine without an irqchip), one more with a TSC deadline armed: each costs
    7-10 us on the project's hosts."""
    raw = snap.raw
    for kind in EARLY_KINDS:
        data = raw[kind]
        if kind == "xsave" and len(data) != vcpu.xsave_size:
            data = xsave_fits(data, vcpu.xsave_size) or data  # checked before the restore began
        vcpu.set_raw(kind, data)
    vcpu.set_msrs_raw(snap.msrs)
    if "lapic" in raw:
        vcpu.set_raw("lapic", raw["lapic"])
    vcpu.set_msrs_raw(_deadline_for_now(vcpu, snap))
    vcpu.set_mp_state(snap.mp_state)
    for kind in LATE_KINDS:
        vcpu.set_raw(kind, raw[kind])


def _deadline_for_now(vcpu: Vcpu, snap: VcpuSnapshot) -> bytes:
    """The late MSRs to write: the TSC deadline, if armed, moved by how far the TSC moved since
    the snapshot (read after the MSRs, the saved TSC among them, were written)."""
    late = snap.late_msrs
    if not late:
        return late
    index, _, deadline = _MSR_ENTRY.unpack_from(late)
    saved_tsc = snap.msr_values().get(MSR_IA32_TSC) if deadline else None
    if index != MSR_IA32_TSC_DEADLINE or saved_tsc is None:
        return late
    moved = vcpu.get_msrs([MSR_IA32_TSC])[MSR_IA32_TSC] - saved_tsc
    return _MSR_ENTRY.pack(index, 0, (deadline + moved) & (2**64 - 1)) + late[_MSR_ENTRY.size :]


def xsave_fits(area: bytes, size: int) -> bytes | None:
    """A saved XSAVE area as this host's `size` bytes: a smaller one padded with zeros (the
    components past it are absent from its header's XSTATE_BV), a larger one cut if nothing but
    zeros lies past `size`; None if state would be lost."""
    if len(area) <= size:
        return area + bytes(size - len(area))
    return area[:size] if not any(area[size:]) else None
