"""Which instruction ended just before RIP (vmm.spp.atomic.AtomicWrites.site): the bytes before a
write exit's RIP decoded at every length, the locked read-modify-writes (and xchg) among those that
end at RIP and write the exit's address; cached by RIP, and looked up again when the code changes.
A fake vCPU with identity paging; guest RAM is real (memfd-backed GuestMemory)."""

from __future__ import annotations

from typing import Any

import pytest

from kvm_abi import ffi
from vmm.board.memory import GuestMemory
from vmm.spp.atomic import AtomicWrites
from vmm.x86.locked import Kind

CODE = 0x10000
DATA = 0x20000


class FlatVcpu:
    """64-bit mode, identity-mapped, RDI = DATA; counts translations."""

    def __init__(self) -> None:
        self.translations = 0

    def get_regs(self) -> Any:
        regs = ffi.new("struct kvm_regs *")
        regs.rdi, regs.rflags = DATA, 0x202
        return regs

    def get_sregs(self) -> Any:
        sregs = ffi.new("struct kvm_sregs *")
        sregs.cr0, sregs.efer = 0x80000011, 0x500
        sregs.cs.l, sregs.cs.type, sregs.cs.present, sregs.cs.s = 1, 0xB, 1, 1
        return sregs

    def translate(self, gva: int) -> int | None:
        self.translations += 1
        return gva


def site_of(code: bytes, length: int = 4) -> tuple[Kind | None, int | None]:
    memory = GuestMemory()
    memory.add_ram(0, 1 << 20)
    memory.write(CODE, code)
    op = AtomicWrites(memory).site(FlatVcpu(), CODE + len(code), DATA, length).op
    return (None, None) if op is None else (op.kind, None if op.source is None else op.source.number)


@pytest.mark.parametrize(
    ("code", "want"),
    [
        # a nop ending in 00 00 (no prefix values) before lock add [rdi], r10d: the REX byte is the
        # instruction's own, although `01 17` alone (add [rdi], edx) also ends at RIP
        ("0f1f440000f0440117", (Kind.ADD, 10)),
        ("90f0830701", (Kind.ADD, None)),  # lock add dword [rdi], 1
        ("90f00fc117", (Kind.XADD, 2)),  # lock xadd [rdi], edx
        ("90f00fb137", (Kind.CMPXCHG, 6)),  # lock cmpxchg [rdi], esi
        ("90870f", (Kind.XCHG, 1)),  # xchg [rdi], ecx: locked without the prefix
        ("908917", (None, None)),  # mov [rdi], edx: a plain store keeps KVM's result
        ("900117", (None, None)),  # add [rdi], edx without lock: KVM's result
        ("90f0830601", (None, None)),  # lock add [rsi], 1: writes elsewhere
    ],
)
def test_site(code: str, want: tuple[Kind | None, int | None]) -> None:
    assert site_of(bytes.fromhex(code)) == want


def test_site_of_an_8_byte_exit() -> None:
    # xchg [rdi], rcx: an 8-byte exit is the REX.W form, not the 4-byte `87 0f` inside it
    assert site_of(bytes.fromhex("9048870f"), 8) == (Kind.XCHG, 1)
    assert site_of(bytes.fromhex("9048870f"), 2) == (None, None)


def test_cached_by_rip_and_looked_up_again_when_the_code_changes() -> None:
    memory = GuestMemory()
    memory.add_ram(0, 1 << 20)
    code = bytes.fromhex("90f0830701")
    memory.write(CODE, code)
    atomic, vcpu = AtomicWrites(memory), FlatVcpu()
    rip = CODE + len(code)
    first = atomic.site(vcpu, rip, DATA, 4)
    assert atomic.site(vcpu, rip, DATA, 4) is first and atomic.lookups == 1
    memory.write(CODE, bytes.fromhex("9090908917"))  # now a plain store ends at the same RIP
    assert atomic.site(vcpu, rip, DATA, 4).op is None and atomic.lookups == 2
