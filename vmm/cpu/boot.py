"""Putting a `BootState` into a vCPU and guest RAM (the side-effecting half of modes.py)."""

from __future__ import annotations

from vmm.cpu.modes import BootState, Segment
from vmm.kvm.vcpu import Vcpu

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time
    from typing import Any, Protocol

    class WritableRam(Protocol):
        """Guest RAM as the boot state needs it (`vmm.board.memory.GuestMemory`)."""

        def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None: ...


def _set_segment(dst: Any, seg: Segment) -> None:
    dst.selector, dst.base, dst.limit, dst.type = seg.selector, seg.base, seg.limit, seg.type
    dst.present, dst.dpl, dst.db, dst.s, dst.l, dst.g = seg.present, seg.dpl, seg.db, seg.s, seg.l, seg.g
    dst.avl = 0
    dst.unusable = 0


def apply_boot_state(vcpu: Vcpu, memory: WritableRam, state: BootState) -> None:
    for gpa, data in state.memory:
        memory.write(gpa, data)
    sregs = vcpu.get_sregs()
    for name, seg in state.segments.items():
        _set_segment(getattr(sregs, name), seg)
    sregs.gdt.base, sregs.gdt.limit = state.gdt
    sregs.idt.base, sregs.idt.limit = state.idt
    sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer = state.cr0, state.cr3, state.cr4, state.efer
    vcpu.set_sregs(sregs)
    regs = vcpu.get_regs()
    regs.rip, regs.rsp, regs.rflags = state.rip, state.rsp, state.rflags
    vcpu.set_regs(regs)
