"""`Snapshot`: the whole state of a stopped machine, and the functions that capture and restore it.

What is in it: per vCPU the registers, special registers, XSAVE area (the FPU with it), XCRs,
debug registers, every MSR KVM lists and reads, the LAPIC, pending events, the MP state and the
CPUID table; per VM the PICs, the IOAPIC, the PIT, the clock and the memslot layout; the devices'
registers; the SPP masks; the user hooks' data; and guest RAM, sparse (pages of zeros are left
out). The caller (the machine facade) makes sure no vCPU is inside KVM_RUN or has an exit's
completion pending.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from vmm.board.board import Board
from vmm.errors import SnapshotHost, SnapshotMismatch
from vmm.snapshot.fileformat import encode, read_snapshot, write_snapshot
from vmm.snapshot.hooks import SnapshotHooks
from vmm.snapshot.ram import Pages, capture_ram, restore_pages, restore_ram
from vmm.snapshot.vcpu_state import MSR_IA32_TSC_DEADLINE, VcpuSnapshot, capture_vcpu, restore_vcpu, xsave_fits
from vmm.snapshot.vm_state import VmSnapshot, capture_vm, memslot_layout, restore_clock, restore_vm

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time
    from typing import Any, Protocol

    from vmm.devices.protocol import Device

    class SppMasks(Protocol):
        """What a snapshot needs of the SPP controller (`vmm.spp.controller.Spp`)."""

        @property
        def backend_name(self) -> str: ...
        def masks(self) -> dict[int, int]: ...
        def protect_pages(self, masks: dict[int, int]) -> None: ...


@dataclass
class Snapshot:
    spec: dict[str, Any]  # mem_size, smp, irqchip, platform, debug_exit, testdev, strict
    vcpus: list[VcpuSnapshot]
    vm: VmSnapshot
    devices: dict[str, dict[str, Any]]
    spp: dict[int, int] | None  # page -> mask, None when SPP was off
    hooks: dict[str, str]  # hook name -> JSON text
    ram: Pages = field(repr=False)
    spp_backend: str | None = None  # "software", "kernel:rfc-v1" or "kernel:v12" with SPP on

    def save(self, path: str) -> None:
        """Write the snapshot to `path` in the documented file format (`vmm.snapshot.fileformat`)."""
        write_snapshot(self, path)

    def to_bytes(self) -> bytes:
        return encode(self)

    @staticmethod
    def load(path: str) -> Snapshot:
        """Read a snapshot file; every defect is one line and its own status (40-44)."""
        d = read_snapshot(path)
        return Snapshot(d.spec, d.vcpus, d.vm, d.devices, d.spp, d.hooks, d.ram, d.spp_backend)


def spec_of(board: Board) -> dict[str, Any]:
    s = board.spec
    d = s.devices
    return {"mem_size": s.mem_size, "smp": s.smp, "irqchip": board.irqchip, "platform": d.platform,
            "debug_exit": list(d.debug_exit) if d.debug_exit is not None else None, "testdev": d.testdev,
            "strict": d.strict}  # fmt: skip


def stateful_devices(devices: Sequence[Device]) -> Iterator[tuple[str, Any]]:
    """(key, device) for every device with registers to save; keys are names, numbered on repeats."""
    seen: dict[str, int] = {}
    for d in devices:
        if not (hasattr(d, "save_state") and hasattr(d, "load_state")):
            continue
        n = seen.get(d.name, 0)
        seen[d.name] = n + 1
        yield (d.name if n == 0 else f"{d.name}#{n}"), d


KEEP_MSRS = frozenset({0x10, MSR_IA32_TSC_DEADLINE})  # IA32_TSC, IA32_TSC_DEADLINE: not probed by writing


class MsrLists:
    """Which MSRs each vCPU reads, worked out once per machine (a probe per refused MSR)."""

    def __init__(self) -> None:
        self.by_vcpu: dict[int, list[int]] = {}

    def of(self, board: Board, index: int) -> list[int]:
        if index not in self.by_vcpu:
            self.by_vcpu[index] = board.vcpus[index].saveable_msrs(board.kvm.msr_index_list(), keep=KEEP_MSRS)
        return self.by_vcpu[index]


def capture(board: Board, spp: SppMasks | None, hooks: SnapshotHooks, msrs: MsrLists) -> Snapshot:
    irqchip = board.irqchip
    vcpus = [capture_vcpu(v, msrs.of(board, v.index), irqchip=irqchip) for v in board.vcpus]
    vm = capture_vm(board.vm, irqchip=irqchip)
    devices = {key: d.save_state() for key, d in stateful_devices(board.devices)}
    return Snapshot(spec_of(board), vcpus, vm, devices, spp.masks() if spp is not None else None,
                    hooks.save_all(), capture_ram(board.memory),
                    spp.backend_name if spp is not None else None)  # fmt: skip


def check_fits(board: Board, snap: Snapshot) -> None:
    """Refuse, before anything changes, a snapshot this machine cannot take."""
    mine = spec_of(board)
    for key, what in (("mem_size", "RAM size"), ("smp", "vCPU count")):
        if snap.spec[key] != mine[key]:
            raise SnapshotMismatch(f"snapshot has {what} {snap.spec[key]:#x}, this machine {mine[key]:#x}"
                                   if key == "mem_size" else
                                   f"snapshot has {what} {snap.spec[key]}, this machine {mine[key]}")  # fmt: skip
    for key in ("irqchip", "platform", "debug_exit", "testdev"):
        if snap.spec[key] != mine[key]:
            raise SnapshotMismatch(f"snapshot was taken with {key} {snap.spec[key]!r}, this machine has {mine[key]!r}")
    if len(snap.vcpus) != len(board.vcpus):
        raise SnapshotMismatch(f"snapshot holds {len(snap.vcpus)} vCPUs, this machine has {len(board.vcpus)}")
    xsave = board.vcpus[0].xsave_size
    for v in snap.vcpus:
        if xsave_fits(v.raw["xsave"], xsave) is None:
            raise SnapshotHost(f"snapshot's vCPU {v.index} has XSAVE state past this host's {xsave}-byte area "
                               f"(its area is {len(v.raw['xsave'])} bytes)")  # fmt: skip
    keys = {key for key, _ in stateful_devices(board.devices)}
    if set(snap.devices) - keys:
        raise SnapshotMismatch(f"snapshot has state of devices this machine lacks: {sorted(set(snap.devices) - keys)}")


def restore(
    board: Board, snap: Snapshot, spp: SppMasks | None, hooks: SnapshotHooks, *, dirty: set[int] | None = None
) -> None:
    """Put `snap` back. `dirty`: the only pages that may differ from the snapshot (a fast reset);
    None copies all of RAM."""
    if dirty is None:
        restore_ram(board.memory, snap.ram)
    else:
        restore_pages(board.memory, snap.ram, dirty)
    restore_cpu_and_devices(board, snap, spp, hooks)


def restore_cpu_and_devices(board: Board, snap: Snapshot, spp: SppMasks | None, hooks: SnapshotHooks) -> None:
    restore_vcpus_and_vm(board, snap)
    restore_devices(board, snap, spp, hooks)


def restore_vcpus_and_vm(board: Board, snap: Snapshot) -> None:
    restore_vm(board.vm, snap.vm)
    for vcpu, vs in zip(board.vcpus, snap.vcpus, strict=True):
        restore_vcpu(vcpu, vs)
    restore_clock(board.vm, snap.vm)


def restore_devices(board: Board, snap: Snapshot, spp: SppMasks | None, hooks: SnapshotHooks) -> None:
    for key, device in stateful_devices(board.devices):
        state = snap.devices.get(key)
        if state is not None:
            device.load_state(state)
    if spp is not None:
        wanted = snap.spp or {}
        current = spp.masks()
        if current != wanted:  # unchanged masks: no memslot rebuild (the reset loop's case)
            change = {p: 0xFFFFFFFF for p in current if p not in wanted}
            change.update(wanted)
            spp.protect_pages(change)
    hooks.load_all(snap.hooks)


_CPUID_HEAD = struct.Struct("<II")  # struct kvm_cpuid2: nent, padding
_CPUID_ENTRY = struct.Struct("<IIIIIII12x")  # function, index, flags, eax, ebx, ecx, edx, padding
# (leaf, subleaf) -> the registers holding feature bits a guest may have relied on
FEATURE_REGS: dict[tuple[int, int], tuple[str, ...]] = {
    (1, 0): ("ecx", "edx"),
    (7, 0): ("ebx", "ecx", "edx"),
    (0xD, 1): ("eax",),
    (0x80000001, 0): ("ecx", "edx"),
}


def cpuid_features(raw: bytes) -> dict[tuple[int, int, str], int]:
    (nent, _) = _CPUID_HEAD.unpack_from(raw)
    out = {}
    for i in range(nent):
        fn, idx, _, eax, ebx, ecx, edx = _CPUID_ENTRY.unpack_from(raw, _CPUID_HEAD.size + i * _CPUID_ENTRY.size)
        regs = {"eax": eax, "ebx": ebx, "ecx": ecx, "edx": edx}
        for reg in FEATURE_REGS.get((fn, idx), ()):
            out[(fn, idx, reg)] = regs[reg]
    return out


def check_cpuid(board: Board, snap: Snapshot) -> None:
    """Refuse a snapshot whose vCPUs had CPUID feature bits this host would not give them."""
    for vcpu, vs in zip(board.vcpus, snap.vcpus, strict=False):
        here = cpuid_features(vcpu.get_cpuid())
        for (fn, idx, reg), bits in sorted(cpuid_features(vs.cpuid).items()):
            missing = bits & ~here.get((fn, idx, reg), 0)
            if missing:
                raise SnapshotHost(
                    f"snapshot's vCPU {vs.index} has CPUID {fn:#x}.{idx} {reg} bits {missing:#x} that this host lacks"
                )


def check_layout(board: Board, snap: Snapshot) -> None:
    """After a restore: the memslots are laid out as when the snapshot was taken."""
    now = memslot_layout(board.vm)
    if now != snap.vm.memslots:
        raise SnapshotHost(f"memslot layout after restore {now} differs from the snapshot's {snap.vm.memslots}")
