"""The register state an x86 store emulation reads: plain data, no KVM.

`CpuState` holds what the decoder needs for addresses (mode, GPRs, segments) and what the stores
need for their data (SSE/AVX and x87 registers, MXCSR, the control registers that decide faults).
`CpuState.from_kvm` fills it from objects shaped like `struct kvm_regs`, `struct kvm_sregs` and
`struct kvm_fpu`, and from the 4096-byte `struct kvm_xsave` region, without importing KVM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

GPR_NAMES: Final[tuple[str, ...]] = (
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip
"""The 16 GPRs in encoding order (the register number in ModRM/REX), as KVM's names spell them."""

SEGMENT_NAMES: Final[tuple[str, ...]] = ("es", "cs", "ss", "ds", "fs", "gs")
"""Segment registers in encoding order (the sreg field of ModRM)."""

# Control-register and flag bits the emulation looks at.
CR0_PE: Final = 1 << 0
CR0_MP: Final = 1 << 1
CR0_EM: Final = 1 << 2
CR0_TS: Final = 1 << 3
CR0_NE: Final = 1 << 5
CR0_AM: Final = 1 << 18
CR4_UMIP: Final = 1 << 11
CR4_LA57: Final = 1 << 12
CR4_OSFXSR: Final = 1 << 9
CR4_OSXSAVE: Final = 1 << 18
EFER_LMA: Final = 1 << 10
EFER_FFXSR: Final = 1 << 14
RFLAGS_TF: Final = 1 << 8
RFLAGS_DF: Final = 1 << 10
RFLAGS_RF: Final = 1 << 16
RFLAGS_VM: Final = 1 << 17
RFLAGS_AC: Final = 1 << 18

X87_INIT_FCW: Final = 0x037F
MXCSR_INIT: Final = 0x1F80

ZERO16: Final = bytes(16)
ZERO80: Final = bytes(10)

# Byte offsets in the FXSAVE image (the legacy region of an XSAVE area).
FX_FCW: Final = 0
FX_FSW: Final = 2
FX_FTW: Final = 4
FX_FOP: Final = 6
FX_FIP: Final = 8
FX_FDP: Final = 16
FX_MXCSR: Final = 24
FX_MXCSR_MASK: Final = 28
FX_ST: Final = 32
FX_XMM: Final = 160
XSAVE_HEADER: Final = 512
XSAVE_AVX: Final = 576


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment register's hidden part as KVM reports it (`struct kvm_segment`): the limit is in
    bytes (granularity already applied); `type` is the descriptor's 4-bit type field."""

    base: int = 0
    limit: int = 0xFFFF_FFFF
    selector: int = 0
    type: int = 0x3  # read/write data, accessed
    db: bool = True
    unusable: bool = False

    @property
    def is_code(self) -> bool:
        return bool(self.type & 0x8)

    @property
    def writable(self) -> bool:
        return not self.is_code and bool(self.type & 0x2)

    @property
    def expand_down(self) -> bool:
        return not self.is_code and bool(self.type & 0x4)


FLAT: Final = Segment()


def _table_register(sregs: Any, name: str) -> tuple[int, int]:
    """(base, limit) of GDTR or IDTR; the reset value where the caller's sregs leave it out."""
    table = getattr(sregs, name, None)
    return (0, 0xFFFF) if table is None else (int(table.base), int(table.limit))


def _le(data: bytes | bytearray | memoryview, offset: int, size: int) -> int:
    return int.from_bytes(bytes(data[offset : offset + size]), "little")


@dataclass(frozen=True, slots=True)
class CpuState:
    """One vCPU's registers as the store emulation needs them.

    `bitness` is the code's default operand/address size: 64 in 64-bit mode, else 32 or 16 from
    CS.D (16 in real and virtual-8086 mode). x87 registers `st` are 10-byte little-endian values
    in stack order (st[0] is ST(0)), as FXSAVE and `struct kvm_fpu` store them; `ftw` is the
    abridged tag byte (bit i set = physical register i is in use). `xinuse` is the XSAVE
    header's XSTATE_BV as KVM_GET_XSAVE reports it, standing for the processor's XINUSE bits
    (None when unknown). `fcs`/`fds` are the x87 last-instruction selectors (None when unknown:
    the kernel's 64-bit save format does not carry them). `xcr0` is None when unknown.
    """

    bitness: int = 64
    rip: int = 0
    rflags: int = 0x2
    rax: int = 0
    rcx: int = 0
    rdx: int = 0
    rbx: int = 0
    rsp: int = 0
    rbp: int = 0
    rsi: int = 0
    rdi: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    es: Segment = FLAT
    cs: Segment = FLAT
    ss: Segment = FLAT
    ds: Segment = FLAT
    fs: Segment = FLAT
    gs: Segment = FLAT
    cpl: int = 0
    cr0: int = 0x8000_0033  # PG | NE | ET | MP | PE
    cr4: int = CR4_OSFXSR | CR4_OSXSAVE | (1 << 10) | (1 << 5)  # + OSXMMEXCPT, PAE
    efer: int = 0x500  # LME | LMA
    xcr0: int | None = 0x7
    mxcsr: int = MXCSR_INIT
    mxcsr_mask: int | None = 0xFFFF
    xmm: tuple[bytes, ...] = (ZERO16,) * 16
    ymm_high: tuple[bytes, ...] | None = None
    xinuse: int | None = None
    fcw: int = X87_INIT_FCW
    fsw: int = 0
    ftw: int = 0
    st: tuple[bytes, ...] = (ZERO80,) * 8
    fop: int = 0
    fip: int = 0
    fdp: int = 0
    fcs: int | None = 0
    fds: int | None = 0
    gdtr: tuple[int, int] = (0, 0xFFFF)  # (base, limit): what sgdt stores
    idtr: tuple[int, int] = (0, 0xFFFF)  # (base, limit): what sidt stores
    gprs: tuple[int, ...] = field(init=False, repr=False, compare=False)
    segments: tuple[Segment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.bitness not in (16, 32, 64):
            raise ValueError(f"bitness must be 16, 32 or 64, not {self.bitness}")
        if len(self.xmm) != 16 or any(len(x) != 16 for x in self.xmm):
            raise ValueError("xmm must hold 16 registers of 16 bytes")
        if self.ymm_high is not None and (len(self.ymm_high) != 16 or any(len(y) != 16 for y in self.ymm_high)):
            raise ValueError("ymm_high must hold 16 upper halves of 16 bytes")
        if len(self.st) != 8 or any(len(s) != 10 for s in self.st):
            raise ValueError("st must hold 8 registers of 10 bytes")
        object.__setattr__(self, "gprs", tuple(getattr(self, n) & 0xFFFF_FFFF_FFFF_FFFF for n in GPR_NAMES))
        object.__setattr__(self, "segments", (self.es, self.cs, self.ss, self.ds, self.fs, self.gs))

    # --- derived facts -------------------------------------------------------------------------

    @property
    def protected(self) -> bool:
        """Protected (or long) mode and not virtual-8086 mode."""
        return bool(self.cr0 & CR0_PE) and not (self.rflags & RFLAGS_VM)

    @property
    def x87_top(self) -> int:
        return (self.fsw >> 11) & 7

    def st_tag_valid(self, i: int) -> bool:
        """Whether ST(i) is in use (its abridged tag bit is set)."""
        return bool(self.ftw >> ((self.x87_top + i) & 7) & 1)

    def ymm(self, i: int) -> bytes | None:
        """The 32 bytes of YMMi, or None when the upper halves are not known."""
        if self.ymm_high is None:
            return None
        return self.xmm[i] + self.ymm_high[i]

    # --- constructors --------------------------------------------------------------------------

    @classmethod
    def from_kvm(
        cls,
        regs: Any,
        sregs: Any,
        fpu: Any | None = None,
        xsave_region: bytes | bytearray | memoryview | None = None,
        *,
        xcr0: int | None = None,
        fcs_fds: tuple[int, int] | None = None,
    ) -> CpuState:
        """Build from `struct kvm_regs`/`kvm_sregs`/`kvm_fpu`-shaped objects (attribute access,
        e.g. cffi cdata or SimpleNamespace) and the raw `struct kvm_xsave` region. Where both `fpu`
        and `xsave_region` are given the region wins: it also carries MXCSR_MASK, XSTATE_BV and
        the AVX upper halves. `xcr0` comes from KVM_GET_XCRS. `fcs_fds` are the x87 last
        instruction/data selectors if the caller knows them; without them they count as known
        (zero) only while FIP, FDP and FOP are all zero, the state FNINIT and processor reset
        leave, and unknown otherwise."""
        cr0 = int(sregs.cr0)
        rflags = int(regs.rflags)
        efer = int(sregs.efer)
        cs = _segment(sregs.cs)
        if not cr0 & CR0_PE or rflags & RFLAGS_VM:
            bitness = 16
        elif efer & EFER_LMA and int(sregs.cs.l):
            bitness = 64
        else:
            bitness = 32 if cs.db else 16
        if not cr0 & CR0_PE:
            cpl = 0
        elif rflags & RFLAGS_VM:
            cpl = 3
        else:
            cpl = int(sregs.ss.dpl)
        values: dict[str, Any] = {name: int(getattr(regs, name)) for name in GPR_NAMES}
        values.update(
            bitness=bitness,
            rip=int(regs.rip),
            rflags=rflags,
            es=_segment(sregs.es),
            cs=cs,
            ss=_segment(sregs.ss),
            ds=_segment(sregs.ds),
            fs=_segment(sregs.fs),
            gs=_segment(sregs.gs),
            cpl=cpl,
            cr0=cr0,
            cr4=int(sregs.cr4),
            efer=efer,
            xcr0=xcr0,
            gdtr=_table_register(sregs, "gdt"),
            idtr=_table_register(sregs, "idt"),
        )
        if xsave_region is not None:
            values.update(_from_xsave_region(xsave_region))
        elif fpu is not None:
            values.update(
                fcw=int(fpu.fcw),
                fsw=int(fpu.fsw),
                ftw=int(fpu.ftwx),
                fop=int(fpu.last_opcode),
                fip=int(fpu.last_ip),
                fdp=int(fpu.last_dp),
                mxcsr=int(fpu.mxcsr),
                mxcsr_mask=None,
                st=tuple(bytes(fpu.fpr[i][0:10]) for i in range(8)),
                xmm=tuple(bytes(fpu.xmm[i][0:16]) for i in range(16)),
            )
        else:
            raise ValueError("from_kvm needs the FPU state: pass fpu or xsave_region")
        if fcs_fds is not None:
            values["fcs"], values["fds"] = fcs_fds
        elif values["fip"] == 0 and values["fdp"] == 0 and values["fop"] == 0:
            values["fcs"] = values["fds"] = 0
        else:
            values["fcs"] = values["fds"] = None
        return cls(**values)


def _segment(seg: Any) -> Segment:
    return Segment(
        base=int(seg.base),
        limit=int(seg.limit),
        selector=int(seg.selector),
        type=int(seg.type),
        db=bool(seg.db),
        unusable=bool(seg.unusable) or not bool(seg.present),
    )


def _from_xsave_region(region: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The fields of a standard-format XSAVE image (KVM_GET_XSAVE's layout: legacy region in the
    64-bit FXSAVE format, header at 512, AVX upper halves at 576)."""
    if len(region) < XSAVE_AVX + 256:
        raise ValueError(f"an XSAVE region needs at least {XSAVE_AVX + 256} bytes, got {len(region)}")
    xstate_bv = _le(region, XSAVE_HEADER, 8)
    return {
        "fcw": _le(region, FX_FCW, 2),
        "fsw": _le(region, FX_FSW, 2),
        "ftw": _le(region, FX_FTW, 1),
        "fop": _le(region, FX_FOP, 2) & 0x7FF,
        "fip": _le(region, FX_FIP, 8),
        "fdp": _le(region, FX_FDP, 8),
        "mxcsr": _le(region, FX_MXCSR, 4),
        "mxcsr_mask": _le(region, FX_MXCSR_MASK, 4),
        "st": tuple(bytes(region[FX_ST + 16 * i : FX_ST + 16 * i + 10]) for i in range(8)),
        "xmm": tuple(bytes(region[FX_XMM + 16 * i : FX_XMM + 16 * i + 16]) for i in range(16)),
        # A component whose XSTATE_BV bit is clear is in its initial state: zero for AVX.
        "ymm_high": tuple(
            bytes(region[XSAVE_AVX + 16 * i : XSAVE_AVX + 16 * i + 16]) if xstate_bv & 4 else ZERO16
            for i in range(16)
        ),
        "xinuse": xstate_bv,
    }


class _NoFpu:
    """An FPU state for `decoding_state`: decoding reads the mode, GPRs and segments only."""

    fcw, fsw, ftwx, last_opcode, last_ip, last_dp, mxcsr = X87_INIT_FCW, 0, 0, 0, 0, 0, MXCSR_INIT
    fpr = [ZERO16] * 8
    xmm = [ZERO16] * 16


def decoding_state(regs: Any, sregs: Any) -> CpuState:
    """The CpuState instruction decoding needs (mode, GPRs, segments), from kvm_regs/kvm_sregs-shaped
    objects; its FPU fields are the reset values, not the vCPU's."""
    return CpuState.from_kvm(regs, sregs, _NoFpu())
