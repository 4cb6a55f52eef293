"""Decoding: length, bytes, mnemonic and text, and the linear address, size and access of every
explicit and implicit memory operand (RIP-relative, stack, string, segment bases and wrap-around
in each mode)."""

from __future__ import annotations

from vmm.x86 import Access, CpuState, Segment, decode
from vmm.x86.state import RFLAGS_DF


def test_rip_relative_movq() -> None:
    state = CpuState(rip=0x40_1000)
    insn = decode(bytes.fromhex("660fd60d10000000") + bytes(7), state)  # movq [rip+0x10],xmm1
    assert insn is not None
    assert (insn.length, insn.mnemonic, insn.text) == (8, "movq", "movq [401018h],xmm1")
    assert insn.bytes == bytes.fromhex("660fd60d10000000")
    (operand,) = insn.memory
    assert (operand.linear, operand.size, operand.access, operand.segment) == (0x40_1018, 8, Access.WRITE, "ds")
    assert insn.writes_memory()


def test_invalid_and_truncated_bytes_do_not_decode() -> None:
    state = CpuState()
    assert decode(bytes.fromhex("0fff"), state) is None  # UD0 without its ModRM byte
    assert decode(bytes.fromhex("660f"), state) is None
    assert decode(bytes.fromhex("f00f2907"), state) is None  # lock movaps: #UD, not a store
    assert decode(b"", state) is None


def test_push_in_64_and_32_bit_mode() -> None:
    insn = decode(b"\x50", CpuState(rsp=0x8000))
    assert insn is not None
    (operand,) = insn.memory
    assert (operand.segment, operand.linear, operand.size, operand.access) == ("ss", 0x7FF8, 8, Access.WRITE)
    state = CpuState(bitness=32, rsp=0x1000, ss=Segment(base=0x1_0000))
    insn = decode(b"\x50", state)
    assert insn is not None
    assert (insn.memory[0].linear, insn.memory[0].size) == (0x1_0FFC, 4)
    # a 16-bit stack (SS.B clear) wraps SP at 64 KiB whatever CS.D says
    state = CpuState(bitness=32, rsp=0x2, ss=Segment(base=0x1_0000, limit=0xFFFF, db=False))
    insn = decode(b"\x50", state)
    assert insn is not None and insn.memory[0].effective == 0xFFFE


def test_string_operands_follow_rsi_rdi_rcx_and_df() -> None:
    state = CpuState(rdi=0x2000, rcx=3, rflags=0x2 | RFLAGS_DF)
    insn = decode(bytes.fromhex("f3ab"), state)  # rep stosd
    assert insn is not None
    (operand,) = insn.memory
    assert (operand.segment, operand.linear, operand.size, operand.count, operand.step) == ("es", 0x2000, 4, 3, -4)
    assert operand.conditional and operand.span == (0x2000 - 8, 0x2004)
    insn = decode(b"\xa4", CpuState(rsi=0x10, rdi=0x20))  # movsb
    assert insn is not None
    assert [(m.segment, m.linear, m.access) for m in insn.memory] == [
        ("es", 0x20, Access.WRITE),
        ("ds", 0x10, Access.READ),
    ]


def test_segment_bases() -> None:
    state = CpuState(rdi=0x100, fs=Segment(base=0x7000_0000), ds=Segment(base=0x5000))
    insn = decode(bytes.fromhex("64488907"), state)  # mov fs:[rdi],rax
    assert insn is not None and insn.memory[0].linear == 0x7000_0100
    insn = decode(bytes.fromhex("488907"), state)  # DS's base counts for nothing in 64-bit mode
    assert insn is not None and insn.memory[0].linear == 0x100
    state32 = CpuState(bitness=32, rdi=0x2000, ds=Segment(base=0xFFFF_F000))
    insn = decode(bytes.fromhex("8907"), state32)  # linear addresses wrap at 4 GiB
    assert insn is not None and insn.memory[0].linear == 0x1000


def test_16_bit_addressing_wraps_the_offset() -> None:
    state = CpuState(bitness=16, rbx=0xFFF0, rsi=0x20, ds=Segment(base=0x2_0000, limit=0xFFFF))
    insn = decode(bytes.fromhex("8900"), state)  # mov [bx+si],ax
    assert insn is not None
    (operand,) = insn.memory
    assert (operand.effective, operand.linear, operand.size, operand.address_bits) == (0x10, 0x2_0010, 2, 16)


def test_address_size_prefix_in_64_bit_mode() -> None:
    insn = decode(bytes.fromhex("67890f"), CpuState(rdi=0x1_2345_6789))  # mov [edi],ecx
    assert insn is not None and insn.memory[0].linear == 0x2345_6789


def test_state_save_extents() -> None:
    assert [m.size for m in decode(bytes.fromhex("0fae07"), CpuState()).memory] == [512]  # type: ignore[union-attr]
    for rax, size, exact in ((7, 832, True), (3, 576, True), (0xFF, 4096, False)):
        insn = decode(bytes.fromhex("0fae27"), CpuState(rax=rax, xcr0=0xE7))
        assert insn is not None
        assert (insn.memory[0].size, insn.memory[0].exact_size) == (size, exact)


def test_cmpxchg16b_reads_and_writes() -> None:
    insn = decode(bytes.fromhex("f0480fc70e"), CpuState(rsi=0x3000))
    assert insn is not None
    assert insn.text == "lock cmpxchg16b [rsi]"
    (operand,) = insn.memory
    assert (operand.access, operand.size, operand.conditional) == (Access.READ_WRITE, 16, False)


def test_x87_and_avx_text() -> None:
    state = CpuState()
    assert decode(bytes.fromhex("db3f"), state).text == "fstp tbyte ptr [rdi],st"  # type: ignore[union-attr]
    insn = decode(bytes.fromhex("c4e37d390701"), state)
    assert insn is not None and (insn.mnemonic, insn.memory[0].size) == ("vextracti128", 16)
    # FSTCW is two instructions: FWAIT first, then FNSTCW
    insn = decode(bytes.fromhex("9bd93f"), state)
    assert insn is not None and (insn.mnemonic, insn.length, insn.memory) == ("wait", 1, ())
