"""FXSAVE/FXSAVE64 and the XSAVE forms: the state is loaded on this CPU with XRSTOR (with chosen
XSTATE_BV, so components start in or out of their initial state), dumped with XSAVE64 the way
KVM_GET_XSAVE reports it, and saved by the instruction under test into a buffer of 0xAA. The
emulation starts from the dump (through CpuState.from_kvm) and must write the same bytes."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from tests.unit import x86_cpu
from vmm.x86 import CpuState, Fault, Unsupported, decode, emulate_store
from vmm.x86.state import EFER_FFXSR

OPS = ["fxsave", "fxsave64", "xsave", "xsave64", "xsaveopt", "xsaveopt64", "xsavec", "xsavec64"]
HOST_XCR0 = 0xE7  # what this machine's XCR0 holds; RFBM stays within x87/SSE/AVX below


def _image(rng: random.Random, xstate_bv: int, mxcsr: int, x87_error: bool) -> bytes:
    image = bytearray(832)
    image[0:2] = (0x037E if x87_error else 0x027F | rng.randrange(4) << 10).to_bytes(2, "little")
    image[2:4] = ((0x0081 if x87_error else 0x0020) | rng.randrange(8) << 11 | 0x4100).to_bytes(2, "little")
    image[4] = rng.randrange(256)
    image[6:8] = rng.randrange(0x800).to_bytes(2, "little")
    image[8:24] = bytes(rng.randrange(256) for _ in range(16))
    image[24:28] = mxcsr.to_bytes(4, "little")
    for i in range(8):
        image[32 + 16 * i : 42 + 16 * i] = bytes(rng.randrange(256) for _ in range(10))
    image[160:416] = bytes(rng.randrange(256) for _ in range(256))
    image[512:520] = xstate_bv.to_bytes(8, "little")
    image[576:832] = bytes(rng.randrange(256) for _ in range(256))
    return bytes(image)


def _cases() -> list[tuple[str, int, bytes]]:
    rng = random.Random(512)
    cases = []
    for xstate_bv in (0, 1, 2, 3, 4, 7):
        for mxcsr in (0x1F80, 0x1FA0):
            image = _image(rng, xstate_bv, mxcsr, x87_error=False)
            for op in OPS:
                for rfbm in (7, 1, 2, 3, 4, 5, 6, 0):
                    if op.startswith("fx") and rfbm != 7:
                        continue
                    cases.append((op, rfbm, image))
    image = _image(rng, 7, 0x1F80, x87_error=True)
    cases += [(op, 7, image) for op in OPS]
    return cases


CASES = _cases()


def _regs(rfbm: int) -> SimpleNamespace:
    regs = dict.fromkeys(
        ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"),
        0,
    )
    regs.update(rax=rfbm & 0xFFFF_FFFF, rdx=rfbm >> 32, rdi=x86_cpu.BASE, rip=0x40_3000, rflags=0x202)
    return SimpleNamespace(**regs)


def _sregs(**changes: int) -> SimpleNamespace:
    def seg(selector: int, type_: int, long: int = 0) -> SimpleNamespace:
        return SimpleNamespace(
            base=0, limit=0xFFFF_FFFF, selector=selector, type=type_, present=1, dpl=3, db=0 if long else 1,
            s=1, l=long, g=1, avl=0, unusable=0,
        )  # fmt: skip

    values = {"cr0": 0x8000_0033, "cr4": 0x406A0 | 1 << 18, "efer": 0xD01}
    values.update(changes)
    data = seg(0x2B, 3)
    return SimpleNamespace(cs=seg(0x33, 0xB, long=1), ds=data, es=data, fs=data, gs=data, ss=data, **values)


@pytest.fixture(scope="module")
def native() -> list[list[str]]:
    return x86_cpu.run([f"xs {op} {rfbm:x} {image.hex()}" for op, rfbm, image in CASES])


@pytest.mark.parametrize("op", OPS)
def test_save_matches_the_cpu(op: str, native: list[list[str]]) -> None:
    compared = 0
    for (name, rfbm, _image_in), (code, dump_hex, target_hex) in zip(CASES, native, strict=True):
        if name != op:
            continue
        dump = bytes.fromhex(dump_hex) + bytes(4096 - 832)
        target = bytes.fromhex(target_hex)
        state = CpuState.from_kvm(_regs(rfbm), _sregs(), xsave_region=dump, xcr0=HOST_XCR0)
        before = bytes([0xAA]) * 1088
        result = x86_cpu.emulate_hex(code, state, memory=before)
        if isinstance(result, Unsupported):
            # only the 32-bit image needs the selectors, which a 64-bit dump does not hold
            assert state.fcs is None and not op.endswith("64"), result
            continue
        effect = x86_cpu.effect(result)
        assert x86_cpu.apply(effect.writes, 1088) == target, f"{op} rfbm={rfbm} xstate_bv={dump[512]:#x}"
        assert [w.linear for w in effect.writes] == sorted(w.linear for w in effect.writes)
        compared += 1
    assert compared >= 9


def _emulate(code: str, state: CpuState) -> object:
    insn = decode(bytes.fromhex(code), state)
    assert insn is not None
    return emulate_store(insn, state, lambda a, n: bytes(n))


def test_components_beyond_avx_are_refused() -> None:
    state = CpuState(rdi=0x10000, rax=0xFF, xcr0=0xE7, xinuse=7, ymm_high=(bytes(16),) * 16)
    assert isinstance(_emulate("0fae27", state), Unsupported)


def test_unknown_xinuse_or_xcr0_is_refused() -> None:
    assert isinstance(_emulate("0fae27", CpuState(rdi=0x10000, rax=3, xinuse=None)), Unsupported)
    assert isinstance(_emulate("0fae27", CpuState(rdi=0x10000, rax=3, xinuse=3, xcr0=None)), Unsupported)


def test_fxsave_refusals() -> None:
    assert isinstance(_emulate("0fae07", CpuState(rdi=0x10000, efer=0x500 | EFER_FFXSR)), Unsupported)
    assert isinstance(_emulate("0fae07", CpuState(rdi=0x10000, mxcsr_mask=None)), Unsupported)
    assert isinstance(_emulate("0fae07", CpuState(rdi=0x10000, cr4=1 << 18)), Unsupported)  # OSFXSR clear
    assert isinstance(_emulate("0fae07", CpuState(rdi=0x10000, fip=5, fcs=None)), Unsupported)
    assert not isinstance(_emulate("480fae07", CpuState(rdi=0x10000, fip=5, fcs=None)), Unsupported)


def test_xsave_needs_osxsave() -> None:
    result = _emulate("0fae27", CpuState(rdi=0x10000, rax=3, xinuse=3, cr4=1 << 9))
    assert isinstance(result, Fault) and result.vector == 6


def test_from_kvm_reads_the_fpu_struct_when_no_region_is_given() -> None:
    fpu = SimpleNamespace(
        fpr=[bytes([i]) * 16 for i in range(8)], fcw=0x37F, fsw=0x3800, ftwx=0x80, last_opcode=0x51F,
        last_ip=0x1234, last_dp=0x5678, xmm=[bytes([0x40 + i]) * 16 for i in range(16)], mxcsr=0x1F80,
    )  # fmt: skip
    state = CpuState.from_kvm(_regs(7), _sregs(), fpu)
    assert state.bitness == 64 and state.cpl == 3 and state.rdi == x86_cpu.BASE
    assert state.st[7] == bytes([7]) * 10 and state.xmm[15] == bytes([0x4F]) * 16
    assert state.x87_top == 7 and state.st_tag_valid(0)
    assert state.fop == 0x51F and state.fcs is None  # pointers set, selectors unknown
    assert state.mxcsr_mask is None and state.ymm_high is None and state.xinuse is None


@pytest.mark.parametrize(
    ("cr0", "efer", "cs_l", "cs_db", "rflags", "bitness"),
    [
        (0x10, 0, 0, 0, 0x2, 16),  # real mode
        (0x11, 0, 0, 1, 0x2_0002, 16),  # virtual-8086 mode
        (0x11, 0, 0, 1, 0x2, 32),
        (0x11, 0, 0, 0, 0x2, 16),
        (0x8000_0011, 0x500, 0, 1, 0x2, 32),  # compatibility mode
        (0x8000_0011, 0x500, 1, 0, 0x2, 64),
    ],
)
def test_from_kvm_mode(cr0: int, efer: int, cs_l: int, cs_db: int, rflags: int, bitness: int) -> None:
    sregs = _sregs(cr0=cr0, efer=efer)
    sregs.cs = SimpleNamespace(**{**vars(sregs.cs), "l": cs_l, "db": cs_db})
    regs = _regs(0)
    regs.rflags = rflags
    state = CpuState.from_kvm(regs, sregs, xsave_region=bytes(4096))
    assert state.bitness == bitness


COMPAT_OPS = ["fxsave", "xsave", "xsaveopt", "xsavec"]
COMPAT_CASES = [(op, rfbm, image) for op, rfbm, image in CASES if op in COMPAT_OPS]


@pytest.fixture(scope="module")
def native_compat() -> list[list[str]]:
    return x86_cpu.run([f"cm {op} {rfbm:x} {image.hex()}" for op, rfbm, image in COMPAT_CASES])


@pytest.mark.parametrize("op", COMPAT_OPS)
def test_save_in_compatibility_mode_matches_the_cpu(op: str, native_compat: list[list[str]]) -> None:
    """Outside 64-bit mode only XMM0-7 (and YMM0-7's upper halves) are saved."""
    compared = 0
    for (name, rfbm, _image_in), (code, dump_hex, target_hex, address) in zip(COMPAT_CASES, native_compat, strict=True):
        if name != op:
            continue
        dump = bytes.fromhex(dump_hex) + bytes(4096 - 832)
        base = int(address, 16)
        regs = _regs(rfbm)
        regs.rdi = base
        sregs = _sregs()
        sregs.cs = SimpleNamespace(**{**vars(sregs.cs), "l": 0, "db": 1, "selector": 0x23})
        state = CpuState.from_kvm(regs, sregs, xsave_region=dump, xcr0=HOST_XCR0)
        assert state.bitness == 32
        insn = decode(bytes.fromhex(code), state)
        assert insn is not None
        result = emulate_store(insn, state, lambda a, n: bytes([0xAA]) * n)
        if isinstance(result, Unsupported):
            assert state.fcs is None, result
            continue
        effect = x86_cpu.effect(result)
        assert x86_cpu.apply(effect.writes, 1088, base=base) == bytes.fromhex(target_hex), f"{op} rfbm={rfbm}"
        compared += 1
    assert compared >= 9
