"""CMPXCHG8B/CMPXCHG16B: success and failure on this CPU against the emulation (memory after,
RAX/RDX, ZF), the write-back on failure, and the register rules outside 64-bit mode."""

from __future__ import annotations

import random

import pytest

from tests.unit import x86_cpu
from vmm.x86 import CpuState, Fault, StoreEffect, decode, emulate_store

ZF = 1 << 6


def _cases() -> list[tuple[str, bytes, int, int, int, int]]:
    rng = random.Random(16)
    out = []
    for op in ("cmpxchg16b", "cmpxchg8b"):
        for _ in range(12):
            mem = bytes(rng.randrange(256) for _ in range(16))
            rax, rdx, rbx, rcx = (rng.randrange(1 << 64) for _ in range(4))
            if rng.randrange(2):  # make the comparison succeed
                rax = (
                    int.from_bytes(mem[0:8], "little")
                    if op == "cmpxchg16b"
                    else (rax & ~0xFFFF_FFFF | int.from_bytes(mem[0:4], "little"))
                )
                rdx = (
                    int.from_bytes(mem[8:16], "little")
                    if op == "cmpxchg16b"
                    else (rdx & ~0xFFFF_FFFF | int.from_bytes(mem[4:8], "little"))
                )
            out.append((op, mem, rax, rdx, rbx, rcx))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def native() -> list[list[str]]:
    return x86_cpu.run([f"cx {op} {m.hex()} {a:x} {d:x} {b:x} {c:x}" for op, m, a, d, b, c in CASES])


@pytest.mark.parametrize("index", range(len(CASES)))
def test_matches_the_cpu(index: int, native: list[list[str]]) -> None:
    op, mem, rax, rdx, rbx, rcx = CASES[index]
    code, cpu_mem, cpu_rax, cpu_rdx, cpu_zf = native[index]
    state = CpuState(rip=0x1000, rdi=x86_cpu.BASE, rax=rax, rdx=rdx, rbx=rbx, rcx=rcx, rflags=0x202)
    effect = x86_cpu.effect(x86_cpu.emulate_hex(code, state, memory=mem))
    assert (
        x86_cpu.apply(effect.writes, 16, base=x86_cpu.BASE)[: (16 if op == "cmpxchg16b" else 8)]
        == bytes.fromhex(cpu_mem)[: (16 if op == "cmpxchg16b" else 8)]
    )
    assert len(effect.writes) == 1  # written either way: the old value goes back on failure
    assert bool(effect.rflags & ZF) == (cpu_zf == "1")
    assert effect.rflags & ~ZF == 0x202
    assert effect.gprs.get("rax", rax) == int(cpu_rax, 16)
    assert effect.gprs.get("rdx", rdx) == int(cpu_rdx, 16)
    assert set(effect.gprs) <= {"rax", "rdx"}
    assert (effect.gprs == {}) == (cpu_zf == "1")


def test_lock_prefix_is_the_same_operation() -> None:
    state = CpuState(rdi=0x2000, rax=1, rdx=2, rbx=3, rcx=4)
    memory = (1).to_bytes(8, "little") + (2).to_bytes(8, "little")
    results = []
    for code in ("480fc70f", "f0480fc70f"):
        insn = decode(bytes.fromhex(code), state)
        assert insn is not None
        results.append(emulate_store(insn, state, lambda a, n: memory[:n]))
    first, second = results
    assert isinstance(first, StoreEffect) and isinstance(second, StoreEffect)
    assert first.writes == second.writes and first.rflags & ZF and second.rflags & ZF
    assert second.rip == first.rip + 1


def test_cmpxchg16b_misaligned_is_gp0() -> None:
    state = CpuState(rdi=0x2008)
    insn = decode(bytes.fromhex("480fc70f"), state)
    assert insn is not None
    result = emulate_store(insn, state, lambda a, n: bytes(n))
    assert isinstance(result, Fault) and (result.vector, result.error_code) == (13, 0)


def test_cmpxchg8b_needs_no_alignment_and_keeps_upper_halves_in_32_bit_mode() -> None:
    state = CpuState(bitness=32, rip=0x1000, rdi=0x2003, rax=0xAAAA_0000_0000_0001, rdx=0xBBBB_0000_0000_0002)
    insn = decode(bytes.fromhex("0fc70f"), state)
    assert insn is not None and insn.mnemonic == "cmpxchg8b"
    effect = emulate_store(insn, state, lambda a, n: bytes(range(n)))
    assert isinstance(effect, StoreEffect) and not effect.rflags & ZF
    assert effect.writes[0].linear == 0x2003 and effect.writes[0].data == bytes(range(8))
    assert effect.gprs == {"rax": 0xAAAA_0000_0302_0100, "rdx": 0xBBBB_0000_0706_0504}
