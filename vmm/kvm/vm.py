"""`Vm`: a VM file descriptor, its memslots and its vCPUs: the only code that issues VM ioctls."""

from __future__ import annotations

import os

from kvm_abi import caps, constants, ffi, ioctls
from kvm_abi.constants import KVM_PIT_SPEAKER_DUMMY
from vmm.errors import KvmSetupError
from vmm.kvm.calls import NULL, as_arg, ioctl, new, raw_ioctl
from vmm.kvm.vcpu import RING_ENTRY, Vcpu
from vmm.layout import KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR
from vmm.record import TupleRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any


class Memslot(TupleRecord):
    slot: int
    gpa: int
    size: int
    host_addr: int
    flags: int

    @property
    def end(self) -> int:
        return self.gpa + self.size


class Vm:
    """`vcpu_mmap_size` and `sync_regs` come from the system fd (KVM_GET_VCPU_MMAP_SIZE, and
    whether KVM_CAP_SYNC_REGS offers the GPRs), so a vCPU can be made without asking it again."""

    def __init__(self, fd: int, *, vcpu_mmap_size: int, sync_regs: bool) -> None:
        self.fd = fd
        self.vcpu_mmap_size = vcpu_mmap_size
        self.sync_regs = sync_regs
        self.memslots: dict[int, Memslot] = {}
        self.vcpus: list[Vcpu] = []
        self.max_memslots = self.check_extension(caps.KVM_CAP_NR_MEMSLOTS) or 32
        # The XSAVE area's size for KVM_GET_XSAVE2 (at least 4096; more once a dynamic feature such
        # as AMX tile data is permitted), 0 where KVM has only the 4 KiB KVM_GET_XSAVE.
        self.xsave_size = self.check_extension(caps.KVM_CAP_XSAVE2)
        self.dirty_ring_entries = 0  # per vCPU, once enable_dirty_ring() has run
        self._region = new("struct kvm_userspace_memory_region *")
        self._dirty_log = new("struct kvm_dirty_log *")

    def close(self) -> None:
        for v in self.vcpus:
            v.close()
        self.vcpus.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # --- platform set-up -----------------------------------------------------------------
    def set_tss_addr(self, addr: int = KVM_TSS_ADDR) -> None:
        ioctl(self.fd, ioctls.KVM_SET_TSS_ADDR, as_arg(addr), "KVM_SET_TSS_ADDR")

    def set_identity_map_addr(self, addr: int = KVM_IDENTITY_MAP_ADDR) -> None:
        ident = new("uint64_t *", addr)
        ioctl(self.fd, ioctls.KVM_SET_IDENTITY_MAP_ADDR, ident, "KVM_SET_IDENTITY_MAP_ADDR")

    def create_irqchip(self) -> None:
        """KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and a LAPIC per vCPU (before any vCPU)."""
        ioctl(self.fd, ioctls.KVM_CREATE_IRQCHIP, NULL, "KVM_CREATE_IRQCHIP")

    def create_pit2(self) -> None:
        """KVM_CREATE_PIT2: the in-kernel 8254 timer, on IRQ 0 (after the irqchip)."""
        cfg = new("struct kvm_pit_config *")
        cfg.flags = KVM_PIT_SPEAKER_DUMMY  # port 0x61 is answered in the kernel too
        ioctl(self.fd, ioctls.KVM_CREATE_PIT2, cfg, "KVM_CREATE_PIT2")

    def set_pit_reinject(self, reinject: bool) -> None:
        """KVM_REINJECT_CONTROL: whether the in-kernel PIT delivers ticks the guest missed later
        (QEMU's kvm-pit lost_tick_policy=delay) or drops them (discard). The argument is a struct
        of one byte and 31 reserved ones."""
        arg = new("uint8_t[32]")
        arg[0] = 1 if reinject else 0
        ioctl(self.fd, ioctls.KVM_REINJECT_CONTROL, arg, "KVM_REINJECT_CONTROL")

    def irq_line(self, irq: int, level: int) -> None:
        """Drive interrupt line `irq` of the in-kernel PIC/IOAPIC to `level`."""
        line = new("struct kvm_irq_level *")
        line.irq, line.level = irq, level
        ioctl(self.fd, ioctls.KVM_IRQ_LINE, line, f"KVM_IRQ_LINE({irq})")

    def get_irqchip(self, chip_id: int) -> bytes:
        """KVM_GET_IRQCHIP: the raw `struct kvm_irqchip` of the PIC master (0), slave (1) or IOAPIC (2)."""
        chip = new("struct kvm_irqchip *")
        chip.chip_id = chip_id
        ioctl(self.fd, ioctls.KVM_GET_IRQCHIP, chip, f"KVM_GET_IRQCHIP({chip_id})")
        return bytes(ffi.buffer(chip))

    def set_irqchip(self, raw: bytes) -> None:
        chip = _from_bytes("struct kvm_irqchip *", raw)
        ioctl(self.fd, ioctls.KVM_SET_IRQCHIP, chip, f"KVM_SET_IRQCHIP({int(chip.chip_id)})")

    def get_pit2(self) -> bytes:
        state = new("struct kvm_pit_state2 *")
        ioctl(self.fd, ioctls.KVM_GET_PIT2, state, "KVM_GET_PIT2")
        return bytes(ffi.buffer(state))

    def set_pit2(self, raw: bytes) -> None:
        """KVM_SET_PIT2: each channel restarts its count from now (KVM reloads the counters), so
        the time the VM spent stopped is not owed to the guest as a burst of ticks."""
        ioctl(self.fd, ioctls.KVM_SET_PIT2, _from_bytes("struct kvm_pit_state2 *", raw), "KVM_SET_PIT2")

    def get_clock(self) -> int:
        """KVM_GET_CLOCK: the kvmclock value in ns."""
        data = new("struct kvm_clock_data *")
        ioctl(self.fd, ioctls.KVM_GET_CLOCK, data, "KVM_GET_CLOCK")
        return int(data.clock)

    def set_clock(self, ns: int) -> None:
        """KVM_SET_CLOCK with no flags: the clock reads `ns` now (no realtime catch-up)."""
        data = new("struct kvm_clock_data *")
        data.clock = ns
        ioctl(self.fd, ioctls.KVM_SET_CLOCK, data, "KVM_SET_CLOCK")

    def get_dirty_log(self, slot: int, bitmap: Any) -> None:
        """KVM_GET_DIRTY_LOG into `bitmap` (a cffi buffer of one bit per page of the slot,
        rounded up to 64 bits): the pages the guest wrote since the last call, which KVM then
        clears and write-protects again."""
        log = self._dirty_log
        log.slot = slot
        log.dirty_bitmap = bitmap
        ioctl(self.fd, ioctls.KVM_GET_DIRTY_LOG, log, f"KVM_GET_DIRTY_LOG(slot {slot})")

    def enable_dirty_ring(self, entries: int) -> None:
        """KVM_CAP_DIRTY_LOG_RING (its acquire/release variant where offered): each vCPU logs the
        pages it dirties in a ring of `entries` (a power of two) it shares with userspace, in
        place of the per-slot bitmaps. Only before the first vCPU; KVM_GET_DIRTY_LOG is then
        refused."""
        if self.vcpus:
            raise KvmSetupError("the dirty ring must be enabled before any vCPU is created")
        ring_bytes = entries * RING_ENTRY
        cap = caps.KVM_CAP_DIRTY_LOG_RING_ACQ_REL
        limit = self.check_extension(cap)
        if not limit:
            cap = caps.KVM_CAP_DIRTY_LOG_RING
            limit = self.check_extension(cap)
        if not limit:
            raise KvmSetupError("this host's KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)")
        if entries & (entries - 1) or not 4096 <= ring_bytes <= limit:
            raise KvmSetupError(
                f"a dirty ring of {entries} entries: KVM takes a power of two from 256 to {limit // RING_ENTRY}"
            )
        self.enable_cap(cap, ring_bytes)
        self.dirty_ring_entries = entries

    def reset_dirty_rings(self) -> int:
        """KVM_RESET_DIRTY_RINGS: write-protect again the pages of every ring entry marked
        harvested, and free those entries; the number of pages."""
        return ioctl(self.fd, ioctls.KVM_RESET_DIRTY_RINGS, NULL, "KVM_RESET_DIRTY_RINGS")

    def check_extension(self, cap: int) -> int:
        return max(raw_ioctl(self.fd, ioctls.KVM_CHECK_EXTENSION, as_arg(cap)), 0)

    def enable_cap(self, cap: int, *args: int) -> None:
        ec = new("struct kvm_enable_cap *")
        ec.cap = cap
        for i, a in enumerate(args):
            ec.args[i] = a
        ioctl(self.fd, ioctls.KVM_ENABLE_CAP, ec, f"KVM_ENABLE_CAP({cap})")

    def set_msr_filter(self, ranges: list[tuple[int, int, int, bytes]], *, default_deny: bool = False) -> None:
        """KVM_X86_SET_MSR_FILTER: `ranges` are (flags, base, nmsrs, bitmap), at most 16; a clear
        bit filters that MSR for the flags' accesses (read, write). KVM copies the bitmaps."""
        if len(ranges) > constants.KVM_MSR_FILTER_MAX_RANGES:
            limit = constants.KVM_MSR_FILTER_MAX_RANGES
            raise KvmSetupError(f"{len(ranges)} MSR filter ranges; KVM takes at most {limit}")
        flt = new("struct kvm_msr_filter *")
        flt.flags = constants.KVM_MSR_FILTER_DEFAULT_DENY if default_deny else constants.KVM_MSR_FILTER_DEFAULT_ALLOW
        keep = []  # the bitmaps must live until the ioctl has copied them
        for i, (flags, base, nmsrs, bitmap) in enumerate(ranges):
            buf = new("uint8_t[]", bitmap)
            keep.append(buf)
            r = flt.ranges[i]
            r.flags, r.base, r.nmsrs, r.bitmap = flags, base, nmsrs, buf
        ioctl(self.fd, ioctls.KVM_X86_SET_MSR_FILTER, flt, "KVM_X86_SET_MSR_FILTER")
        del keep

    # --- memory --------------------------------------------------------------------------
    def free_slot(self) -> int:
        for s in range(self.max_memslots):
            if s not in self.memslots:
                return s
        raise KvmSetupError(f"all {self.max_memslots} memslots are in use")

    def set_memslot(self, slot: int, gpa: int, size: int, host_addr: int, flags: int) -> Memslot:
        r = self._region
        r.slot, r.flags, r.guest_phys_addr, r.memory_size, r.userspace_addr = slot, flags, gpa, size, host_addr
        ioctl(self.fd, ioctls.KVM_SET_USER_MEMORY_REGION, r, f"KVM_SET_USER_MEMORY_REGION(slot {slot})")
        ms = Memslot(slot, gpa, size, host_addr, flags)
        self.memslots[slot] = ms
        return ms

    def delete_memslot(self, slot: int) -> None:
        ms = self.memslots.pop(slot)
        r = self._region
        r.slot, r.flags, r.guest_phys_addr, r.memory_size, r.userspace_addr = slot, 0, ms.gpa, 0, 0
        ioctl(self.fd, ioctls.KVM_SET_USER_MEMORY_REGION, r, f"KVM_SET_USER_MEMORY_REGION(delete {slot})")

    def memslot_at(self, gpa: int) -> Memslot | None:
        for ms in self.memslots.values():
            if ms.gpa <= gpa < ms.end:
                return ms
        return None

    # --- vCPUs ---------------------------------------------------------------------------
    def create_vcpu(self, index: int | None = None) -> Vcpu:
        idx = len(self.vcpus) if index is None else index
        fd = ioctl(self.fd, ioctls.KVM_CREATE_VCPU, as_arg(idx), f"KVM_CREATE_VCPU({idx})")
        vcpu = Vcpu(fd, idx, self.vcpu_mmap_size, sync_regs=self.sync_regs, xsave_size=self.xsave_size)
        if self.dirty_ring_entries:
            vcpu.map_dirty_ring(self.dirty_ring_entries)
        self.vcpus.append(vcpu)
        return vcpu

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _from_bytes(ctype: str, raw: bytes) -> Any:
    """A new cffi object of `ctype` holding `raw` (the kernel's own layout, as saved)."""
    obj = new(ctype)
    buf = ffi.buffer(obj)
    if len(raw) != len(buf):
        raise KvmSetupError(f"saved {ctype.rstrip(' *')} is {len(raw)} bytes, this ABI's is {len(buf)}")
    buf[:] = raw
    return obj
