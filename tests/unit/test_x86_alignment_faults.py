"""Faults the emulation reports instead of a store: alignment #GP(0) where the SDM demands an
aligned operand, canonical and segment checks, and the refusal under alignment checking."""

from __future__ import annotations

import pytest

from vmm.x86 import CpuState, Fault, Segment, StoreEffect, Unsupported, decode, emulate_store
from vmm.x86.results import EmulationResult
from vmm.x86.state import CR0_AM, RFLAGS_AC

ALIGNED_FORMS = {
    "movaps": ("0f2907", 16),
    "movapd": ("660f2907", 16),
    "movdqa": ("660f7f07", 16),
    "movntdq": ("660fe707", 16),
    "movntps": ("0f2b07", 16),
    "movntpd": ("660f2b07", 16),
    "vmovaps xmm": ("c5f82907", 16),
    "vmovaps ymm": ("c5fc2907", 32),
    "vmovdqa ymm": ("c5fd7f07", 32),
    "vmovntdq ymm": ("c5fde707", 32),
    "fxsave": ("0fae07", 16),
    "fxsave64": ("480fae07", 16),
    "xsave": ("0fae27", 64),
    "xsavec": ("0fc727", 64),
    "cmpxchg16b": ("f0480fc70f", 16),
}
UNALIGNED_FORMS = {
    "movups": "0f1107",
    "movdqu": "f30f7f07",
    "movq": "660fd607",
    "vmovdqu ymm": "c5fe7f07",
    "fstp m80": "db3f",
    "cmpxchg8b": "0fc70f",
}


def _state(**changes: object) -> CpuState:
    values: dict[str, object] = {
        "rax": 3,
        "xinuse": 3,
        "ymm_high": (bytes(16),) * 16,
        "ftw": 0xFF,
    }
    values.update(changes)
    return CpuState(**values)  # type: ignore[arg-type]


def _run(code: str, state: CpuState) -> EmulationResult:
    insn = decode(bytes.fromhex(code), state)
    assert insn is not None
    return emulate_store(insn, state, lambda a, n: bytes(n))


@pytest.mark.parametrize("name", ALIGNED_FORMS)
def test_misaligned_operand_is_gp0(name: str) -> None:
    code, alignment = ALIGNED_FORMS[name]
    for offset in (alignment // 2, 8, 1):
        result = _run(code, _state(rdi=0x10000 + offset))
        assert isinstance(result, Fault), (name, offset, result)
        assert (result.vector, result.error_code) == (13, 0)
    assert isinstance(_run(code, _state(rdi=0x10000)), StoreEffect)


def test_alignment_fault_through_the_stack_is_still_gp0() -> None:
    result = _run("0f290424", _state(rsp=0x10008))  # movaps [rsp],xmm0
    assert isinstance(result, Fault) and (result.vector, result.error_code) == (13, 0)


@pytest.mark.parametrize("name", UNALIGNED_FORMS)
def test_unaligned_forms_store(name: str) -> None:
    assert isinstance(_run(UNALIGNED_FORMS[name], _state(rdi=0x10003)), StoreEffect)


def test_alignment_checking_is_refused_when_it_would_apply() -> None:
    checking = {"cr0": 0x8000_0033 | CR0_AM, "rflags": 0x2 | RFLAGS_AC, "cpl": 3}
    assert isinstance(_run("0f1107", _state(rdi=0x10003, **checking)), Unsupported)
    assert isinstance(_run("0f1107", _state(rdi=0x10010, **checking)), StoreEffect)
    assert isinstance(_run("0f1107", _state(rdi=0x10003, **{**checking, "cpl": 0})), StoreEffect)


def test_misaligned_xsave_is_gp0_even_for_16_byte_alignment() -> None:
    result = _run("0fae27", _state(rdi=0x10010))
    assert isinstance(result, Fault) and result.vector == 13


def test_32_bit_segment_checks() -> None:
    base = {"bitness": 32, "rdi": 0xFFC, "rsp": 0xFFC}
    limited = Segment(limit=0xFFF)
    assert isinstance(_run("0f1107", _state(**base, ds=Segment(limit=0x100B))), StoreEffect)
    result = _run("0f1107", _state(**base, ds=limited))
    assert isinstance(result, Fault) and (result.vector, result.error_code) == (13, 0)
    result = _run("0f110424", _state(**base, ss=limited))  # movups [esp],xmm0
    assert isinstance(result, Fault) and (result.vector, result.error_code) == (12, 0)
    result = _run("0f1107", _state(**base, ds=Segment(type=0x1)))  # read-only data
    assert isinstance(result, Fault) and result.vector == 13
    result = _run("0f1107", _state(**base, ds=Segment(unusable=True)))  # null selector
    assert isinstance(result, Fault) and result.vector == 13
    assert isinstance(_run("0f1107", _state(**base, ds=Segment(type=0x7))), Unsupported)  # expand-down


def test_non_canonical_with_la57() -> None:
    address = 0x0000_8000_0000_0000  # canonical only with 5-level paging
    assert isinstance(_run("0f1107", _state(rdi=address)), Fault)
    assert isinstance(_run("0f1107", _state(rdi=address, cr4=0x406A0 | 1 << 18 | 1 << 12)), StoreEffect)
    # a store that runs off the top of the lower canonical half
    result = _run("0f1107", _state(rdi=0x0000_7FFF_FFFF_FFF8))
    assert isinstance(result, Fault) and result.vector == 13
