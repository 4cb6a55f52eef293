"""The VM-wide state KVM keeps: the in-kernel PICs and IOAPIC, the PIT, the clock, the memslots."""

from __future__ import annotations

from dataclasses import dataclass

from kvm_abi import constants as kc
from vmm.kvm.vm import Vm

IRQCHIPS = (kc.KVM_IRQCHIP_PIC_MASTER, kc.KVM_IRQCHIP_PIC_SLAVE, kc.KVM_IRQCHIP_IOAPIC)


@dataclass(frozen=True)
class VmSnapshot:
    irqchip: tuple[bytes, ...]  # PIC master, PIC slave, IOAPIC (raw kvm_irqchip); empty without one
    pit: bytes | None  # raw kvm_pit_state2
    clock: int  # kvmclock, ns
    memslots: tuple[tuple[int, int, int], ...]  # (gpa, size, flags) in address order, dirty logging masked off


def memslot_layout(vm: Vm) -> tuple[tuple[int, int, int], ...]:
    return tuple(
        sorted((s.gpa, s.size, s.flags & ~kc.KVM_MEM_LOG_DIRTY_PAGES) for s in vm.memslots.values())
    )


def capture_vm(vm: Vm, *, irqchip: bool) -> VmSnapshot:
    chips = tuple(vm.get_irqchip(c) for c in IRQCHIPS) if irqchip else ()
    return VmSnapshot(chips, vm.get_pit2() if irqchip else None, vm.get_clock(), memslot_layout(vm))


def restore_vm(vm: Vm, snap: VmSnapshot) -> None:
    """The interrupt controllers before the vCPUs' LAPICs (the caller's order); the PIT restarts
    its counts from now (see `Vm.set_pit2`)."""
    for raw in snap.irqchip:
        vm.set_irqchip(raw)
    if snap.pit is not None:
        vm.set_pit2(snap.pit)


def restore_clock(vm: Vm, snap: VmSnapshot) -> None:
    vm.set_clock(snap.clock)
