"""The software engine's locked writes when another vCPU wrote in between (no KVM): two synthetic
vCPUs on the fake host of test_spp_software_engine. vCPU 0's `lock xadd [rdi], esi` reached KVM's
read before vCPU 1's store landed; its write exit carries what KVM computed from the old value.
The engine carries it out again on the current value, allowed or denied, and again when a policy
allows it after more writes landed while the policy ran."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kvm_abi import constants as kc
from kvm_abi import ffi
from tests.fakes import mmio_exit
from tests.unit.test_spp_software_engine import EngineVcpu, FakeHost
from vmm.spp.controller import Spp
from vmm.spp.decoded import decode_failed_instruction
from vmm.spp.event import ALLOW, DENY, SppEvent, SppVerdict
from vmm.spp.software import SoftwareSpp

PAGE = 0x40000
ALLOWED, DENIED = PAGE + 0x10, PAGE + 0x90
MASK = 0xFFFFFFFD  # sub-page 1 denied
CODE = 0x8000
XADD = bytes.fromhex("90f00fc137")  # nop; lock xadd [rdi], esi


class FlatVcpu(EngineVcpu):
    def translate(self, gva: int) -> int | None:
        return gva


@dataclass
class Two:
    host: FakeHost
    spp: Spp
    engine: SoftwareSpp
    events: list[SppEvent]
    verdicts: list[SppVerdict]

    def u32(self, gpa: int) -> int:
        return int.from_bytes(self.host.memory.read(gpa, 4), "little")

    def xadd_exit(self, addr: int, old: int, source: int) -> object:
        """vCPU 0's write exit for `lock xadd [addr], esi` as KVM leaves it: computed from `old`,
        ESI already holding `old`, RIP past the instruction."""
        vcpu = self.host.vcpus[0]
        regs = vcpu.kvm_run.s.regs.regs
        regs.rip, regs.rdi, regs.rsi, regs.rflags = CODE + len(XADD), addr, old, 0x202
        vcpu.kvm_run.kvm_dirty_regs = 0
        data = ((old + source) & 0xFFFFFFFF).to_bytes(4, "little")
        return self.engine.handle_mmio(mmio_exit(vcpu, addr, 4, write=True, data=data))

    def other_writes(self, addr: int, value: int) -> None:
        """vCPU 1's plain store into the page, through the engine."""
        self.host.vcpus[1].kvm_run.s.regs.regs.rip = 0x9000
        self.engine.handle_mmio(mmio_exit(self.host.vcpus[1], addr, 4, write=True, data=value.to_bytes(4, "little")))


@pytest.fixture
def two() -> Iterator[Two]:
    host = FakeHost()
    host.vcpus = [FlatVcpu(index=0), FlatVcpu(index=1)]
    for v in host.vcpus:
        s = v.sregs
        s.cr0, s.efer = 0x80000011, 0x500
        s.cs.l, s.cs.type, s.cs.present, s.cs.s = 1, 0xB, 1, 1
    host.memory.write(CODE, XADD)
    events: list[SppEvent] = []
    verdicts: list[SppVerdict] = []

    def policy(event: SppEvent) -> SppVerdict | None:
        events.append(event)
        return verdicts.pop(0) if verdicts else None

    made: list[SoftwareSpp] = []

    def make(spp: Spp) -> SoftwareSpp:
        made.append(SoftwareSpp(host, spp))
        return made[0]

    spp = Spp(host, make)
    spp.add_policy(policy)
    spp.protect(PAGE, MASK)
    yield Two(host, spp, made[0], events, verdicts)
    host.memory.close()


def esi_of(two: Two) -> int:
    run = two.host.vcpus[0].kvm_run
    assert run.kvm_dirty_regs & kc.KVM_SYNC_X86_REGS  # handed to KVM with the next entry
    return int(run.s.regs.regs.rsi)


def test_allowed_xadd_is_carried_out_on_what_memory_holds_now(two: Two) -> None:
    two.other_writes(ALLOWED, 100)  # vCPU 1's store lands after vCPU 0's read of 5
    assert two.xadd_exit(ALLOWED, old=5, source=3) is None
    assert two.u32(ALLOWED) == 103  # not KVM's 8: vCPU 1's update is not lost
    assert esi_of(two) == 100  # and xadd hands back what it really added to
    assert two.engine.atomic.redone == 1


def test_without_a_write_in_between_kvms_result_stands(two: Two) -> None:
    two.other_writes(ALLOWED, 5)
    two.other_writes(PAGE + 0x20, 7)
    two.engine.atomic.seen[0] = two.engine.atomic.generation  # vCPU 0 saw the last write
    assert two.xadd_exit(ALLOWED, old=5, source=3) is None
    assert two.u32(ALLOWED) == 8 and two.engine.atomic.redone == 0
    assert not two.host.vcpus[0].kvm_run.kvm_dirty_regs


def test_denied_xadd_reads_the_current_value_and_writes_nothing(two: Two) -> None:
    two.host.memory.write(DENIED, (100).to_bytes(4, "little"))  # what the monitor put there since
    assert two.xadd_exit(DENIED, old=5, source=3) is None
    assert two.u32(DENIED) == 100
    [event] = two.events
    assert event.data == (103).to_bytes(4, "little")  # the write as the instruction makes it now
    assert esi_of(two) == 100


def test_allowed_by_the_policy_after_more_writes_is_carried_out_again(two: Two) -> None:
    two.host.memory.write(DENIED, (100).to_bytes(4, "little"))

    def allow_after_a_race(event: SppEvent) -> SppVerdict:
        two.host.memory.write(DENIED, (1000).to_bytes(4, "little"))  # lands while the policy runs
        return ALLOW

    two.spp.add_policy(allow_after_a_race)
    assert two.xadd_exit(DENIED, old=5, source=3) is None
    assert two.u32(DENIED) == 1003
    assert esi_of(two) == 1000


def test_a_denied_one_changes_nothing(two: Two) -> None:
    two.verdicts.append(DENY)
    two.xadd_exit(DENIED, old=5, source=3)
    assert two.u32(DENIED) == 0 and len(two.events) == 1


# --- adc's carry-in, readings that do not explain KVM's exit, the monitor's writes ------------
OTHER_CODE = 0xA000
ADC = bytes.fromhex("90f01137")  # nop; lock adc [rdi], esi
# `mov ax, 0x44f0` then `add [rdi], edx` (01 17): read backwards, `f0 44 01 17` is also
# lock add [rdi], r10d, ending at the same RIP and writing the same dword
MOV_THEN_ADD = bytes.fromhex("66b8f0440117")
NOP_THEN_LOCK_ADD = bytes.fromhex("0f1f440000f0440117")  # lock add [rdi], r10d after a 5-byte nop


def exit_of(two: Two, code: bytes, addr: int, old: int, regs: dict[str, int], rflags: int, op_bytes: bytes) -> object:
    """vCPU 0's write exit for the instruction ending `code` (at OTHER_CODE), as KVM leaves it
    after reading `old`: its write and flags from the instruction's model run on `old`."""
    from iced_x86 import Decoder

    from vmm.x86.locked import classify, redo
    from vmm.x86.state import GPR_NAMES

    two.host.memory.write(OTHER_CODE, code)
    op = classify(Decoder(64, op_bytes).decode(), 64, locked_only=False)
    assert op is not None
    gprs = dict.fromkeys(GPR_NAMES, 0) | regs
    done = redo(op, old, 0, gprs, rflags, rflags & 1)
    vcpu = two.host.vcpus[0]
    sync = vcpu.kvm_run.s.regs.regs
    for name, value in (gprs | done.gprs).items():
        setattr(sync, name, value)
    sync.rip, sync.rdi, sync.rflags = OTHER_CODE + len(code), addr, done.rflags
    vcpu.kvm_run.kvm_dirty_regs = 0
    data = done.write.to_bytes(op.size, "little")
    return two.engine.handle_mmio(mmio_exit(vcpu, addr, op.size, write=True, data=data))


def seen_now(two: Two) -> None:
    """vCPU 0's previous trapped write is the last one (it read everything up to here)."""
    two.engine.atomic.seen[0] = two.engine.atomic.generation


def raced(two: Two, read: int, then: int) -> None:
    """The allowed word held `read` when vCPU 0 last looked, then vCPU 1 wrote `then`."""
    two.other_writes(ALLOWED, read)
    seen_now(two)
    two.other_writes(ALLOWED, then)


def test_racing_adc_is_carried_out_again_with_its_carry(two: Two) -> None:
    raced(two, 5, 100)  # the 100 lands after vCPU 0's adc read 5 with CF set
    assert exit_of(two, ADC, ALLOWED, 5, {"rsi": 3}, 0x203, ADC[1:]) is None
    assert two.u32(ALLOWED) == 104  # 100 + 3 + the carry: neither KVM's 9 nor a carry lost
    run = two.host.vcpus[0].kvm_run
    assert run.kvm_dirty_regs & kc.KVM_SYNC_X86_REGS and run.s.regs.regs.rflags & 1 == 0
    assert two.engine.atomic.redone == 1 and two.engine.atomic.ambiguous == 0


def test_racing_sbb_without_carry(two: Two) -> None:
    sbb = bytes.fromhex("90f01937")  # lock sbb [rdi], esi
    raced(two, 50, 100)
    assert exit_of(two, sbb, ALLOWED, 50, {"rsi": 7}, 0x202, sbb[1:]) is None
    assert two.u32(ALLOWED) == 93


def test_a_carry_nothing_can_tell_keeps_kvms_result(two: Two) -> None:
    # adc [m], 0 with CF set read 5 and writes 6; vCPU 1 wrote 6 meanwhile: "read 5, carry 1" and
    # "read 6, carry 0" both give exactly KVM's write and flags
    raced(two, 5, 6)
    assert exit_of(two, ADC, ALLOWED, 5, {"rsi": 0}, 0x203, ADC[1:]) is None
    assert two.u32(ALLOWED) == 6 and two.engine.atomic.ambiguous == 1 and two.engine.atomic.redone == 0


def test_an_f0_that_ends_the_instruction_before_is_not_read_as_lock(two: Two) -> None:
    # the real instruction is add [rdi], edx (unlocked) with EDX = 3, R10 = 0x1000: it read 5 and
    # writes 8. Read as `lock add [rdi], r10d` it would be carried out again as 100 + 0x1000.
    raced(two, 5, 100)
    regs = {"rdx": 3, "r10": 0x1000}
    assert exit_of(two, MOV_THEN_ADD, ALLOWED, 5, regs, 0x202, MOV_THEN_ADD[4:]) is None
    assert two.u32(ALLOWED) == 8  # KVM's result: an unlocked add may interleave so
    assert two.engine.atomic.redone == 0


def test_the_real_lock_add_after_prefix_valued_bytes_is_still_redone(two: Two) -> None:
    raced(two, 5, 100)
    regs = {"rdx": 7, "r10": 3}
    assert exit_of(two, NOP_THEN_LOCK_ADD, ALLOWED, 5, regs, 0x202, NOP_THEN_LOCK_ADD[5:]) is None
    assert two.u32(ALLOWED) == 103 and two.engine.atomic.redone == 1


def test_a_monitor_write_between_kvms_read_and_its_write_is_not_lost(two: Two) -> None:
    two.other_writes(ALLOWED, 5)
    seen_now(two)
    generation = two.engine.atomic.generation
    two.host.memory.write_u32(ALLOWED, 100)  # a device or a ucall result, on another thread
    assert two.engine.atomic.generation == generation + 1  # made under the lock, as one write
    assert two.xadd_exit(ALLOWED, old=5, source=3) is None
    assert two.u32(ALLOWED) == 103 and esi_of(two) == 100


def test_monitor_writes_elsewhere_take_no_lock(two: Two) -> None:
    generation = two.engine.atomic.generation
    two.host.memory.write(PAGE + 2 * 4096, b"x" * 8)
    assert two.engine.atomic.generation == generation and two.host.memory.read(PAGE + 2 * 4096, 8) == b"x" * 8


# --- a denied cmpxchg16b that a policy allows after another write landed -----------------------
CX16 = bytes.fromhex("f0480fc70f")  # lock cmpxchg16b [rdi]


class XsaveVcpu(FlatVcpu):
    """What the decoded-store path reads besides the registers: an empty XSAVE area, no XCRs."""

    def get_xsave(self) -> Any:
        return ffi.new("struct kvm_xsave *")

    def get_xcrs(self) -> Any:
        return ffi.new("struct kvm_xcrs *")


def test_an_allowed_cmpxchg16b_compares_again_with_what_memory_holds_then(two: Two) -> None:
    vcpu = XsaveVcpu(index=0)
    vcpu.sregs = two.host.vcpus[0].sregs
    two.host.vcpus[0] = vcpu
    a, b, c = (0x1111_2222_3333_4444_5555_6666_7777_8888, 0xAAAA_BBBB_CCCC_DDDD_EEEE_FFFF_0000_1111, 0x99)
    two.host.memory.write(DENIED, a.to_bytes(16, "little"))
    regs = vcpu.get_regs()
    regs.rip, regs.rdi, regs.rflags = OTHER_CODE, DENIED, 0x202
    regs.rax, regs.rdx, regs.rbx, regs.rcx = a & (2**64 - 1), a >> 64, b & (2**64 - 1), b >> 64
    vcpu.set_regs(regs)
    two.host.memory.write(OTHER_CODE, CX16)

    def allow_after_a_write(event: SppEvent) -> SppVerdict:
        assert event.data == b.to_bytes(16, "little")  # judged: it would swap in B
        two.host.memory.write(DENIED, c.to_bytes(16, "little"))  # lands while the policy runs
        return ALLOW

    two.spp.add_policy(allow_after_a_write)
    insn = decode_failed_instruction(vcpu, CX16)
    assert insn is not None and insn.mnemonic == "cmpxchg16b"
    assert two.engine.emulate_decoded(vcpu, insn) is None
    # compared again when allowed: memory no longer holds A, so nothing is swapped in, and
    # RDX:RAX get what memory holds now, ZF clear, as the CPU does on a failed compare
    assert int.from_bytes(two.host.memory.read(DENIED, 16), "little") == c
    after = vcpu.get_regs()
    assert (after.rax, after.rdx) == (c & (2**64 - 1), c >> 64)
    assert not after.rflags & 0x40 and after.rip == OTHER_CODE + len(CX16)


def test_a_large_monitor_write_is_not_logged_byte_for_byte(two: Two) -> None:
    two.other_writes(ALLOWED, 5)
    seen_now(two)
    two.host.memory.write(PAGE, bytes(2 * 4096))  # an image over the trapped page
    assert two.engine.atomic.log[-1] is None  # no log to tell a carry from: KVM's result
    two.host.memory.write_u32(ALLOWED, 100)
    assert exit_of(two, ADC, ALLOWED, 5, {"rsi": 3}, 0x203, ADC[1:]) is None
    assert two.u32(ALLOWED) == 9 and two.engine.atomic.redone == 0
