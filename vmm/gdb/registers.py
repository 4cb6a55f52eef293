"""The registers gdb sees: the x86-64 target description (qXfer:features:read) and the `g`/`p`/`P`
packets' encoding, from a vCPU's KVM state.

The layout follows the feature names QEMU gives its x86-64 description, so gdb front ends that
know QEMU find the same registers: `org.gnu.gdb.i386.core` holds the general registers, RIP,
EFLAGS, the segment selectors, then fs_base, gs_base and k_gs_base, the control registers (cr0,
cr2, cr3, cr4, cr8) and EFER, then the x87 registers; `org.gnu.gdb.i386.sse` holds xmm0-15 and
MXCSR. Registers are numbered in the order they appear (no regnum attributes), which is the order
of the `g` packet. gdb shows every register of the core feature that has no float or vector type
in `info registers`, so the bases and control registers appear there, as under QEMU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvm_abi import ffi

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

MSR_KERNEL_GS_BASE = 0xC0000102
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
CONTROL = ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")
X87_CONTROL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")


@dataclass
class State:
    """One vCPU's registers as KVM returns them (read once per `g` packet). The x87 and SSE state
    comes from KVM_GET_XSAVE's legacy area, not KVM_GET_FPU: that one leaves MXCSR 0, and both it
    and KVM_SET_FPU ignore the XSAVE header, so a value written while the host held the SSE state
    in its init form (XSTATE_BV bit clear) was lost on the next restore. Writes set the bit."""

    regs: Any
    sregs: Any
    kernel_gs_base: int
    xsave: Any  # struct kvm_xsave: the FXSAVE layout in its first 512 bytes, XSTATE_BV at 512

    @property
    def area(self) -> memoryview:
        return memoryview(ffi.buffer(self.xsave)).cast("B")

    def field(self, offset: int, size: int) -> int:
        return int.from_bytes(self.area[offset : offset + size], "little")

    def put(self, offset: int, size: int, value: int, feature: int) -> str:
        area = self.area
        area[offset : offset + size] = (value & (1 << 8 * size) - 1).to_bytes(size, "little")
        bv = int.from_bytes(area[XSTATE_BV : XSTATE_BV + 8], "little") | feature
        area[XSTATE_BV : XSTATE_BV + 8] = bv.to_bytes(8, "little")
        return "xsave"


# the FXSAVE (XSAVE legacy) area, and the XSAVE header's XSTATE_BV
FCW, FSW, FTW, FOP, FIP, FDP, MXCSR, ST0, XMM0, XSTATE_BV = 0, 2, 4, 6, 8, 16, 24, 32, 160, 512
X87, SSE_STATE = 1, 2  # XSTATE_BV bits


@dataclass(frozen=True)
class Register:
    name: str
    bits: int
    xml_type: str
    get: Callable[[State], int]
    set: Callable[[State, int], str] | None  # returns which state part changed; None: read-only
    group: str | None = None

    @property
    def size(self) -> int:
        return self.bits // 8


def _gpr(name: str) -> Register:
    def put(s: State, v: int) -> str:
        setattr(s.regs, name, v)
        return "regs"

    kind = "data_ptr" if name in ("rbp", "rsp") else "int64"
    return Register(name, 64, kind, lambda s: int(getattr(s.regs, name)), put)


def _sreg(name: str, field: str | None = None) -> Register:
    """A field of KVM_GET_SREGS: a control register, EFER, or a segment's base."""

    def get(s: State) -> int:
        return int(getattr(getattr(s.sregs, name), field)) if field else int(getattr(s.sregs, name))

    def put(s: State, v: int) -> str:
        if field:
            setattr(getattr(s.sregs, name), field, v)
        else:
            setattr(s.sregs, name, v)
        return "sregs"

    label = f"{name}_{field}" if field else name
    kind = {"cr0": "x64_cr0", "cr3": "x64_cr3", "cr4": "x64_cr4", "efer": "x64_efer"}.get(label, "int64")
    return Register(label, 64, kind, get, put)


def _selector(name: str) -> Register:
    # a selector alone cannot be loaded without its descriptor: read-only here
    return Register(name, 32, "int32", lambda s: int(getattr(s.sregs, name).selector), None)


def _st(i: int) -> Register:
    at = ST0 + 16 * i
    return Register(f"st{i}", 80, "i387_ext", lambda s: s.field(at, 10), lambda s, v: s.put(at, 10, v, X87))


def full_tag(fsw: int, abridged: int, st: Callable[[int], int]) -> int:
    """FXSAVE keeps an abridged tag (one bit per register: empty or not); gdb shows the full
    two-bit tags, worked out from each register's contents as FSAVE would store them. `st(i)`
    is ST(i)'s 80 bits."""
    top = (fsw >> 11) & 7
    tags = 0
    for phys in range(8):
        if not abridged >> phys & 1:
            tag = 3  # empty
        else:
            raw = st((phys - top) & 7)
            exponent, mantissa = raw >> 64 & 0x7FFF, raw & (1 << 64) - 1
            if exponent == 0 and mantissa == 0:
                tag = 1  # zero
            elif exponent in (0, 0x7FFF) or not mantissa >> 63:
                tag = 2  # special: NaN, infinity, denormal, unnormal
            else:
                tag = 0  # valid
        tags |= tag << (2 * phys)
    return tags


def _x87(name: str) -> Register:
    getters: dict[str, Callable[[State], int]] = {
        "fctrl": lambda s: s.field(FCW, 2),
        "fstat": lambda s: s.field(FSW, 2),
        "ftag": lambda s: full_tag(s.field(FSW, 2), s.field(FTW, 1), lambda i: s.field(ST0 + 16 * i, 10)),
        "fiseg": lambda s: s.field(FIP + 4, 4),
        "fioff": lambda s: s.field(FIP, 4),
        "foseg": lambda s: s.field(FDP + 4, 4),
        "fooff": lambda s: s.field(FDP, 4),
        "fop": lambda s: s.field(FOP, 2),
    }
    put: Callable[[State, int], str] | None = None
    if name in ("fctrl", "fstat"):
        at = FCW if name == "fctrl" else FSW

        def put(s: State, v: int) -> str:
            return s.put(at, 2, v, X87)

    return Register(name, 32, "int", getters[name], put, group="float")


def _xmm(i: int) -> Register:
    at = XMM0 + 16 * i
    return Register(f"xmm{i}", 128, "vec128", lambda s: s.field(at, 16), lambda s, v: s.put(at, 16, v, SSE_STATE))


def _put_rip(s: State, v: int) -> str:
    s.regs.rip = v
    return "regs"


def _put_rflags(s: State, v: int) -> str:
    s.regs.rflags = v
    return "regs"


def _put_kgs(s: State, v: int) -> str:
    s.kernel_gs_base = v
    return "msr"


CORE: tuple[Register, ...] = (
    *(_gpr(n) for n in GPRS),
    Register("rip", 64, "code_ptr", lambda s: int(s.regs.rip), _put_rip),
    Register("eflags", 32, "x64_eflags", lambda s: int(s.regs.rflags) & 0xFFFFFFFF, _put_rflags),
    *(_selector(n) for n in SEGMENTS),
    _sreg("fs", "base"),
    _sreg("gs", "base"),
    Register("k_gs_base", 64, "int64", lambda s: s.kernel_gs_base, _put_kgs),
    *(_sreg(n) for n in CONTROL),
    *(_st(i) for i in range(8)),
    *(_x87(n) for n in X87_CONTROL),
)
SSE: tuple[Register, ...] = (
    *(_xmm(i) for i in range(16)),
    Register(
        "mxcsr",
        32,
        "i386_mxcsr",
        lambda s: s.field(MXCSR, 4),
        lambda s, v: s.put(MXCSR, 4, v, SSE_STATE),
        group="vector",
    ),
)
REGISTERS: tuple[Register, ...] = CORE + SSE
NUMBER = {r.name: i for i, r in enumerate(REGISTERS)}


def read_state(vcpu: Any) -> State:
    kgs = vcpu.get_msrs([MSR_KERNEL_GS_BASE]).get(MSR_KERNEL_GS_BASE, 0)
    return State(vcpu.get_regs(), vcpu.get_sregs(), kgs, vcpu.get_xsave())


def write_state(vcpu: Any, state: State, parts: set[str]) -> None:
    if "regs" in parts:
        vcpu.set_regs(state.regs)
    if "sregs" in parts:
        vcpu.set_sregs(state.sregs)
    if "xsave" in parts:
        vcpu.set_xsave(state.xsave)
    if "msr" in parts:
        vcpu.set_msrs({MSR_KERNEL_GS_BASE: state.kernel_gs_base})


def encode(state: State, only: int | None = None) -> str:
    regs = REGISTERS if only is None else (REGISTERS[only],)
    return "".join((r.get(state) & (1 << r.bits) - 1).to_bytes(r.size, "little").hex() for r in regs)


def assign(state: State, number: int, raw: bytes) -> str | None:
    """Set register `number` from its little-endian bytes in `state`; the part of the state to
    write back, or None when the register cannot be written (a selector) or the size is wrong."""
    reg = REGISTERS[number]
    if reg.set is None or len(raw) != reg.size:
        return None
    return reg.set(state, int.from_bytes(raw, "little"))


# --- the description ---------------------------------------------------------------------------
_FLAGS = {
    "x64_eflags": (4, "CF:0 :1 PF:2 AF:4 ZF:6 SF:7 TF:8 IF:9 DF:10 OF:11 NT:14 RF:16 VM:17 AC:18 VIF:19 VIP:20 ID:21"),
    "x64_cr0": (8, "PE:0 MP:1 EM:2 TS:3 ET:4 NE:5 WP:16 AM:18 NW:29 CD:30 PG:31"),
    "x64_cr3": (8, "PCID:0-11 PDBR:12-63"),
    "x64_cr4": (
        8,
        "VME:0 PVI:1 TSD:2 DE:3 PSE:4 PAE:5 MCE:6 PGE:7 PCE:8 OSFXSR:9 OSXMMEXCPT:10 UMIP:11 LA57:12 "
        "VMXE:13 SMXE:14 FSGSBASE:16 PCIDE:17 OSXSAVE:18 SMEP:20 SMAP:21 PKE:22",
    ),
    "x64_efer": (8, "SCE:0 LME:8 LMA:10 NXE:11 SVME:12 LMSLE:13 FFXSR:14 TCE:15"),
    "i386_mxcsr": (4, "IE:0 DE:1 ZE:2 OE:3 UE:4 PE:5 DAZ:6 IM:7 DM:8 ZM:9 OM:10 UM:11 PM:12 FZ:15"),
}


def _flags_xml(name: str) -> str:
    size, spec = _FLAGS[name]
    fields = []
    for item in spec.split():
        label, _, bits = item.partition(":")
        start, _, end = bits.partition("-")
        fields.append(f'<field name="{label}" start="{start}" end="{end or start}"/>')
    return f'<flags id="{name}" size="{size}">' + "".join(fields) + "</flags>"


def _regs_xml(regs: tuple[Register, ...]) -> str:
    out = []
    for r in regs:
        group = f' group="{r.group}"' if r.group else ""
        out.append(f'<reg name="{r.name}" bitsize="{r.bits}" type="{r.xml_type}"{group}/>')
    return "".join(out)


_VECTOR_TYPES = (
    '<vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/>'
    '<vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/>'
    '<vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/>'
    '<union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>'
    '<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/>'
    '<field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>'
    '<field name="uint128" type="uint128"/></union>'
)


def target_xml() -> str:
    core_flags = "".join(_flags_xml(n) for n in ("x64_eflags", "x64_cr0", "x64_cr3", "x64_cr4", "x64_efer"))
    return (
        '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
        "<target><architecture>i386:x86-64</architecture>"
        f'<feature name="org.gnu.gdb.i386.core">{core_flags}{_regs_xml(CORE)}</feature>'
        f'<feature name="org.gnu.gdb.i386.sse">{_VECTOR_TYPES}{_flags_xml("i386_mxcsr")}{_regs_xml(SSE)}</feature>'
        "</target>"
    )


TARGET_XML = target_xml().encode()


def xfer(annex: str, offset: int, length: int) -> str:
    """A qXfer:features:read reply: 'm' + a piece, 'l' + the last piece, or E00 for another annex."""
    if annex != "target.xml":
        return "E00"
    piece = TARGET_XML[offset : offset + length]
    more = offset + length < len(TARGET_XML)
    return ("m" if more else "l") + piece.decode()
