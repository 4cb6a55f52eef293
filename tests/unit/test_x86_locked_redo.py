"""Locked read-modify-writes carried out again on the current value (vmm.x86.locked), against this
CPU: KVM's exit is modelled by running the instruction natively on the stale value (its write and
its registers after), the truth by running it natively on the current value from the same
registers. `redo`, given only KVM's side and the current value, must give the truth: the write,
RAX and RSI, and every flag the instruction defines. A cmpxchg that failed on the stale value is
atomic where KVM read: its registers stay as KVM left them and it writes the current value back.

adc and sbb need their carry-in, which KVM's flags overwrote: `explains`, given the value KVM
read, must accept exactly the carry the CPU had (and every instruction's own exit must be
explained by the value it read, while the same bytes run on another value are not)."""

from __future__ import annotations

import random

import iced_x86 as iced
import pytest

from tests.unit import x86_cpu
from vmm.x86.locked import AF, ARITH, CF, ZF, Kind, classify, explains, redo
from vmm.x86.state import GPR_NAMES

OPS = [
    "add_l", "add_imm_b", "sub_q", "sub_imm_w", "and_l", "or_b", "xor_q", "inc_l", "dec_w", "neg_b", "not_q",
    "bts_imm_l", "btr_l", "btc_q", "xadd_l", "xadd_b", "xadd_q", "xchg_l", "xchg_w", "cmpxchg_l", "cmpxchg_q",
    "cmpxchg_b", "adc_l", "adc_imm_b", "sbb_q", "sbb_imm_w",
]  # fmt: skip
FLAGS_IN = (0x202, 0x203, 0xAD7)  # IF only; with CF; every arithmetic flag set


def _cases() -> list[tuple[str, int, int, int, int, int]]:
    rng = random.Random(8)
    out = []
    for op in OPS:
        for i in range(10):
            stale, current = rng.randrange(1 << 64), rng.randrange(1 << 64)
            # a register bit offset beyond the operand moves the access to another word (KVM's
            # exit then names that word): within it here, so the 8-byte buffer holds the access
            width = {"b": 8, "w": 16, "l": 32, "q": 64}[op[-1]]
            rax, rsi = rng.randrange(1 << 64), rng.randrange(width) if op.startswith("bt") else rng.randrange(1 << 64)
            if op.startswith("cmpxchg") and i % 3 == 0:
                rax = stale  # succeeds on the stale value, fails on the current one
            elif op.startswith("cmpxchg") and i % 3 == 1:
                rax = current  # fails on the stale value
            if i == 9:
                current = stale  # no race at all: KVM's result stands
            out.append((op, stale, current, rax, rsi, FLAGS_IN[i % 3]))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def native() -> list[list[str]]:
    requests = []
    for op, stale, current, rax, rsi, flags in CASES:
        for mem in (stale, current):
            requests.append(f"rmw {op} {mem.to_bytes(8, 'little').hex()} {rax:x} {rsi:x} {flags:x}")
    return x86_cpu.run(requests)


def _defined(kind: Kind) -> int:
    """The flags the instruction defines (the SDM leaves the rest undefined)."""
    if kind in (Kind.BTS, Kind.BTR, Kind.BTC):
        return CF
    if kind in (Kind.AND, Kind.OR, Kind.XOR):
        return ARITH & ~AF
    if kind in (Kind.XCHG, Kind.NOT):
        return 0
    return ARITH


@pytest.mark.parametrize("index", range(len(CASES)))
def test_redo_matches_the_cpu_on_the_current_value(index: int, native: list[list[str]]) -> None:
    _, stale, current, *_ = CASES[index]
    code, kvm_mem, kvm_rax, kvm_rsi, kvm_flags = native[2 * index]
    _, true_mem, true_rax, true_rsi, true_flags = native[2 * index + 1]
    insn = iced.Decoder(64, bytes.fromhex(code)).decode()
    op = classify(insn, 64)
    assert op is not None, code
    size = op.size
    mask = (1 << (8 * size)) - 1
    # KVM's exit: the bytes it writes are the operand's; the memory beyond it is untouched
    written = int.from_bytes(bytes.fromhex(kvm_mem)[:size], "little")
    gprs = dict.fromkeys(GPR_NAMES, 0) | {"rax": int(kvm_rax, 16), "rsi": int(kvm_rsi, 16)}
    carry = CASES[index][5] & CF  # adc's and sbb's carry-in (test_carry_in_is_told... finds it)
    done = redo(op, current & mask, written, gprs, int(kvm_flags, 16), carry)
    after = gprs | done.gprs
    defined = _defined(op.kind)
    if op.kind is Kind.CMPXCHG and not int(kvm_flags, 16) & ZF:
        # failed on KVM's read: complete as KVM left it, the write cycle writes what is there now
        assert done.write == current & mask
        assert (after["rax"], after["rsi"]) == (int(kvm_rax, 16), int(kvm_rsi, 16))
        assert done.rflags & defined == int(kvm_flags, 16) & defined
        return
    assert done.write == int.from_bytes(bytes.fromhex(true_mem)[:size], "little")
    assert (after["rax"], after["rsi"]) == (int(true_rax, 16), int(true_rsi, 16))
    assert done.rflags & defined == int(true_flags, 16) & defined
    assert stale != current or done.write == written  # no race: KVM's own result


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("f0830001", Kind.ADD),
        ("870e", Kind.XCHG),  # xchg with memory is locked without the prefix
        ("f00fc70e", Kind.CMPXCHG8B),
    ],
)
def test_classify_locked(code: str, kind: Kind) -> None:
    op = classify(iced.Decoder(64, bytes.fromhex(code)).decode(), 64)
    assert op is not None and op.kind is kind


@pytest.mark.parametrize(
    "code",
    [
        "830001",  # add without lock
        "8906",  # a plain store
        "f0480fc70e",  # cmpxchg16b: the engine's store emulation carries it out
        "0306",  # add reg, [mem]: memory is the source
    ],
)
def test_classify_refuses(code: str) -> None:
    assert classify(iced.Decoder(64, bytes.fromhex(code)).decode(), 64) is None


def test_unlocked_form_when_asked() -> None:
    op = classify(iced.Decoder(64, bytes.fromhex("830001")).decode(), 64, locked_only=False)
    assert op is not None and op.kind is Kind.ADD and op.immediate == 1


@pytest.mark.parametrize("index", range(len(CASES)))
def test_kvms_exit_is_explained_by_the_value_it_read(index: int, native: list[list[str]]) -> None:
    """The value KVM read explains its exit with the CPU's own carry-in and no other (for adc and
    sbb that is how the lost carry is found); the value the memory holds now, where it differs,
    explains it with no carry at all, for the kinds whose exit depends on the value read."""
    op_name, stale, current, _, _, flags_in = CASES[index]
    code, kvm_mem, kvm_rax, kvm_rsi, kvm_flags = native[2 * index]
    op = classify(iced.Decoder(64, bytes.fromhex(code)).decode(), 64)
    assert op is not None
    mask = (1 << (8 * op.size)) - 1
    written = int.from_bytes(bytes.fromhex(kvm_mem)[: op.size], "little")
    gprs = dict.fromkeys(GPR_NAMES, 0) | {"rax": int(kvm_rax, 16), "rsi": int(kvm_rsi, 16)}
    rflags = int(kvm_flags, 16)
    carries = (0, 1) if op.needs_carry else (0,)
    told = [c for c in carries if explains(op, stale & mask, written, gprs, rflags, c)]
    assert told == [flags_in & CF if op.needs_carry else 0], (op_name, told)
    if stale & mask != current & mask and op.kind in (Kind.ADD, Kind.SUB, Kind.ADC, Kind.SBB, Kind.XADD, Kind.XCHG):
        assert not any(explains(op, current & mask, written, gprs, rflags, c) for c in carries), op_name


def test_adc_and_sbb_need_the_carry() -> None:
    op = classify(iced.Decoder(64, bytes.fromhex("f01106")).decode(), 64)  # lock adc [rsi], eax
    assert op is not None and op.kind is Kind.ADC and op.needs_carry
    gprs = dict.fromkeys(GPR_NAMES, 0) | {"rax": 3}
    assert redo(op, 5, 0, gprs, 0x202, carry=1).write == 9 and redo(op, 5, 0, gprs, 0x202, carry=0).write == 8


def _cx8_cases() -> list[tuple[int, int, int, int, int, int]]:
    rng = random.Random(9)
    out = []
    for i in range(12):
        stale, current = rng.randrange(1 << 64), rng.randrange(1 << 64)
        expected = stale if i % 3 == 0 else current if i % 3 == 1 else rng.randrange(1 << 64)
        rbx, rcx = rng.randrange(1 << 64), rng.randrange(1 << 64)
        out.append((stale, current, expected, expected >> 32, rbx, rcx))
    return out


CX8 = _cx8_cases()


@pytest.fixture(scope="module")
def native_cx8() -> list[list[str]]:
    requests = []
    for stale, current, eax, edx, rbx, rcx in CX8:
        for mem in (stale, current):
            memory = (mem.to_bytes(8, "little") + bytes(8)).hex()
            requests.append(f"cx cmpxchg8b {memory} {eax:x} {edx:x} {rbx:x} {rcx:x}")
    return x86_cpu.run(requests)


@pytest.mark.parametrize("index", range(len(CX8)))
def test_cmpxchg8b_redo_matches_the_cpu(index: int, native_cx8: list[list[str]]) -> None:
    _, current, *_ = CX8[index]
    code, kvm_mem, kvm_rax, kvm_rdx, kvm_zf = native_cx8[2 * index]
    _, true_mem, true_rax, true_rdx, true_zf = native_cx8[2 * index + 1]
    op = classify(iced.Decoder(64, bytes.fromhex("f0" + code)).decode(), 64)
    assert op is not None and op.kind is Kind.CMPXCHG8B
    stale_rbx, stale_rcx = CX8[index][4], CX8[index][5]
    gprs = dict.fromkeys(GPR_NAMES, 0) | {"rax": int(kvm_rax, 16), "rdx": int(kvm_rdx, 16)}
    gprs |= {"rbx": stale_rbx, "rcx": stale_rcx}
    rflags = 0x202 | (ZF if kvm_zf == "1" else 0)
    written = int.from_bytes(bytes.fromhex(kvm_mem)[:8], "little")
    done = redo(op, current, written, gprs, rflags)
    after = gprs | done.gprs
    if kvm_zf != "1":  # failed on KVM's read: complete there, the current value written back
        assert done.write == current and (after["rax"], after["rdx"]) == (int(kvm_rax, 16), int(kvm_rdx, 16))
        return
    assert done.write == int.from_bytes(bytes.fromhex(true_mem)[:8], "little")
    assert (after["rax"], after["rdx"]) == (int(true_rax, 16), int(true_rdx, 16))
    assert bool(done.rflags & ZF) == (true_zf == "1")
