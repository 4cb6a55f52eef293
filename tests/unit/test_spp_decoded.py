"""Telling an emulation failure that is SPP's from one that is not: the failed instruction's
memory operands, decoded from its bytes and the registers, against the trapped pages."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vmm.spp.decoded import decode_failed_instruction, touches_trapped_page

PAGE = 4096
TRAPPED = frozenset({0x300000})


def seg(**kw: int) -> SimpleNamespace:
    base = dict(base=0, limit=0xFFFFFFFF, selector=0x10, type=3, db=1, l=0, dpl=0, present=1, unusable=0)
    base.update(kw)
    return SimpleNamespace(**base)


class Vcpu:
    """Long mode, CPL 0, identity paging below 1 GiB (above it nothing is mapped)."""

    def __init__(self, **gprs: int) -> None:
        names = [
            "rax",
            "rcx",
            "rdx",
            "rbx",
            "rsp",
            "rbp",
            "rsi",
            "rdi",
            "r8",
            "r9",
            "r10",
            "r11",
            "r12",
            "r13",
            "r14",
            "r15",
        ]
        self.regs = SimpleNamespace(**{n: gprs.get(n, 0) for n in names}, rip=0x100000, rflags=2)
        cs = seg(type=0xB, l=1, db=0, selector=8)
        self.sregs = SimpleNamespace(
            cs=cs, ds=seg(), es=seg(), ss=seg(), fs=seg(), gs=seg(), cr0=0x80000033, cr4=0x620, efer=0x500
        )

    def get_regs(self) -> Any:
        return self.regs

    def get_sregs(self) -> Any:
        return self.sregs

    def translate(self, gva: int) -> int | None:
        return gva if gva < 1 << 30 else None


MOVQ_RDI = bytes.fromhex("660fd607")  # movq [rdi], xmm0
LJMP_RBP = bytes.fromhex("ff6d00")  # jmp far [rbp]


def test_a_store_into_a_trapped_page_is_spps() -> None:
    vcpu = Vcpu(rdi=0x300040)
    insn = decode_failed_instruction(vcpu, MOVQ_RDI)
    assert insn is not None and insn.mnemonic == "movq" and insn.length == 4
    assert touches_trapped_page(vcpu, insn, TRAPPED)


def test_a_store_elsewhere_is_not() -> None:
    vcpu = Vcpu(rdi=0x302000)
    insn = decode_failed_instruction(vcpu, MOVQ_RDI)
    assert insn is not None and not touches_trapped_page(vcpu, insn, TRAPPED)


def test_a_store_crossing_into_a_trapped_page_is() -> None:
    vcpu = Vcpu(rdi=0x2FFFFC)  # 8 bytes: 4 before the page, 4 in it
    insn = decode_failed_instruction(vcpu, MOVQ_RDI)
    assert insn is not None and touches_trapped_page(vcpu, insn, TRAPPED)


def test_a_far_pointer_in_unmapped_memory_reaches_no_page() -> None:
    vcpu = Vcpu(rbp=0xC0000000 << 2)  # above the mapped range
    insn = decode_failed_instruction(vcpu, LJMP_RBP)
    assert insn is not None and not touches_trapped_page(vcpu, insn, TRAPPED)


def test_no_bytes_or_invalid_bytes_decode_to_nothing() -> None:
    assert decode_failed_instruction(Vcpu(), None) is None
    assert decode_failed_instruction(Vcpu(), b"") is None
    assert decode_failed_instruction(Vcpu(), bytes.fromhex("0f0b")[:1]) is None  # half a ud2
