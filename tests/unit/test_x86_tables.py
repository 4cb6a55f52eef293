"""sgdt and sidt carried out from their decoded form (vmm.x86.tables): limit then base, 10 bytes in
64-bit mode and 6 with a 32-bit operand size, #GP(0) above CPL 0 under CR4.UMIP, the 16-bit
operand-size form refused. On real KVM, tests/kvm/test_spp_watchdog.py compares the bytes with
what the guest's own sgdt/sidt stored."""

from __future__ import annotations

import dataclasses

from vmm.x86 import CpuState, Fault, StoreEffect, Unsupported, decode, emulate_store
from vmm.x86.state import CR4_UMIP

GDT, IDT = (0xFFFF_8000_0012_3000, 0x47), (0xFFFF_8000_0045_6000, 0xFFF)
STATE = CpuState(rip=0x1000, rdi=0x2000, gdtr=GDT, idtr=IDT)


def run(code: str, state: CpuState = STATE) -> object:
    insn = decode(bytes.fromhex(code), state)
    assert insn is not None
    return emulate_store(insn, state)


def test_sgdt_64_bit_mode_stores_limit_and_8_byte_base() -> None:
    effect = run("0f0107")  # sgdt [rdi]
    assert isinstance(effect, StoreEffect)
    [write] = effect.writes
    assert (write.linear, write.data) == (0x2000, (0x47).to_bytes(2, "little") + GDT[0].to_bytes(8, "little"))
    assert effect.rip == 0x1003 and not effect.gprs


def test_sidt_32_bit_mode_stores_limit_and_4_byte_base() -> None:
    state = dataclasses.replace(STATE, bitness=32, efer=0, idtr=(0x0012_3456, 0x7FF))
    effect = run("0f010f", state)  # sidt [edi]
    assert isinstance(effect, StoreEffect)
    assert effect.writes[0].data == bytes.fromhex("ff07") + (0x0012_3456).to_bytes(4, "little")


def test_umip_makes_it_gp0_at_cpl_3_only() -> None:
    umip = dataclasses.replace(STATE, cr4=STATE.cr4 | CR4_UMIP)
    fault = run("0f0107", dataclasses.replace(umip, cpl=3))
    assert isinstance(fault, Fault) and (fault.vector, fault.error_code) == (13, 0)
    assert isinstance(run("0f0107", umip), StoreEffect)


def test_16_bit_operand_size_is_refused() -> None:
    state = dataclasses.replace(STATE, bitness=32, efer=0)
    assert isinstance(run("660f0107", state), Unsupported)
