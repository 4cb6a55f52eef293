"""SSE and AVX stores: every covered form run on this CPU and emulated, compared byte for byte;
then the exceptions a store raises instead of writing."""

from __future__ import annotations

import random

import pytest

from tests.unit import x86_cpu
from vmm.x86 import CpuState, Fault, StoreEffect, Unsupported, decode, emulate_store
from vmm.x86.state import CR0_EM, CR0_TS, CR4_OSFXSR, CR4_OSXSAVE

OPS = [
    "movq_d6", "movq_7e", "movd", "movss", "movsd", "movhps", "movhpd", "movlps", "movlpd", "movups",
    "movupd", "movaps", "movapd", "movdqu", "movdqa", "movntdq", "movntps", "movntpd", "movnti32",
    "movnti64", "pextrb", "pextrw", "pextrd", "pextrq", "extractps", "stmxcsr", "vmovdqu128",
    "vmovdqu256", "vmovups128", "vmovups256", "vmovaps128", "vmovaps256", "vmovdqa256", "vmovntdq256",
    "vmovq", "vmovq_7e", "vmovd", "vmovss", "vmovsd", "vmovhps", "vmovlpd", "vpextrw", "vextractps",
    "vextracti128", "vextractf128", "vextractf128_0", "vstmxcsr",
]  # fmt: skip


def _state(ymm0: bytes, **changes: object) -> CpuState:
    values: dict[str, object] = {
        "rip": 0x40_1000,
        "rdi": x86_cpu.BASE,
        "rax": int.from_bytes(ymm0[:8], "little"),
        "xmm": (ymm0[:16],) + (bytes(16),) * 15,
        "ymm_high": (ymm0[16:],) + (bytes(16),) * 15,
    }
    values.update(changes)
    return CpuState(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def native() -> dict[tuple[str, bytes], list[str]]:
    rng = random.Random(1234)
    values = [bytes(range(32)), bytes(rng.randrange(256) for _ in range(32)), bytes([0xFF] * 32)]
    cases = [(op, v) for op in OPS for v in values]
    answers = x86_cpu.run([f"sse {op} {v.hex()}" for op, v in cases])
    return {case: answer for case, answer in zip(cases, answers, strict=True)}


@pytest.mark.parametrize("op", OPS)
def test_store_matches_the_cpu(op: str, native: dict[tuple[str, bytes], list[str]]) -> None:
    for (name, ymm0), (code, written) in native.items():
        if name != op:
            continue
        result = x86_cpu.emulate_hex(code, _state(ymm0))
        effect = x86_cpu.effect(result)
        assert x86_cpu.apply(effect.writes, 64).hex() == written, (op, ymm0.hex())
        assert len(effect.writes) == 1
        assert effect.rip == 0x40_1000 + len(code) // 2
        assert effect.gprs == {} and effect.x87 is None


def _emulate(code: bytes, state: CpuState) -> StoreEffect | Fault | Unsupported:
    insn = decode(code, state)
    assert insn is not None
    return emulate_store(insn, state)


MOVUPS = bytes.fromhex("0f1107")  # movups [rdi],xmm0
VMOVDQU256 = bytes.fromhex("c5fe7f07")  # vmovdqu [rdi],ymm0


def test_register_destination_is_not_a_store() -> None:
    # movq rax,xmm0 (66 REX.W 0f 7e c0)
    result = _emulate(bytes.fromhex("66480f7ec0"), _state(bytes(32)))
    assert isinstance(result, Unsupported)


@pytest.mark.parametrize(
    ("changes", "vector"),
    [
        ({"cr0": 0x8000_0033 | CR0_EM}, 6),
        ({"cr4": CR4_OSXSAVE}, 6),  # OSFXSR clear
        ({"cr0": 0x8000_0033 | CR0_TS}, 7),
    ],
)
def test_sse_unavailable(changes: dict[str, int], vector: int) -> None:
    result = _emulate(MOVUPS, _state(bytes(32), **changes))
    assert isinstance(result, Fault) and result.vector == vector and result.error_code is None


@pytest.mark.parametrize(
    ("changes", "vector"),
    [
        ({"xcr0": 0x3}, 6),
        ({"cr4": CR4_OSFXSR}, 6),  # OSXSAVE clear
        ({"cr0": 0x8000_0033 | CR0_TS}, 7),
    ],
)
def test_avx_unavailable(changes: dict[str, int], vector: int) -> None:
    result = _emulate(VMOVDQU256, _state(bytes(32), **changes))
    assert isinstance(result, Fault) and result.vector == vector


def test_avx_needs_known_state() -> None:
    assert isinstance(_emulate(VMOVDQU256, _state(bytes(32), xcr0=None)), Unsupported)
    assert isinstance(_emulate(VMOVDQU256, _state(bytes(32), ymm_high=None)), Unsupported)
    # the 128-bit form needs no upper halves
    assert isinstance(_emulate(bytes.fromhex("c5fa7f07"), _state(bytes(32), ymm_high=None)), StoreEffect)


def test_single_step_is_refused() -> None:
    assert isinstance(_emulate(MOVUPS, _state(bytes(32), rflags=0x102)), Unsupported)


def test_rf_is_cleared_and_other_flags_kept() -> None:
    effect = x86_cpu.effect(_emulate(MOVUPS, _state(bytes(32), rflags=0x1_0283)))
    assert effect.rflags == 0x283


def test_non_canonical_destination() -> None:
    result = _emulate(MOVUPS, _state(bytes(32), rdi=0x0000_8000_0000_0000))
    assert isinstance(result, Fault) and (result.vector, result.error_code) == (13, 0)
    # through RSP the stack segment is used: #SS(0)
    result = _emulate(bytes.fromhex("0f1104 24".replace(" ", "")), _state(bytes(32), rsp=0xFFFF_0000_0000_0000))
    assert isinstance(result, Fault) and (result.vector, result.error_code) == (12, 0)
