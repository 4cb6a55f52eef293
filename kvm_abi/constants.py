"""Flag and limit values of the KVM ABI, plus the libc values used with it.

The libc numbers are the x86_64 Linux ones; this package describes that one
target only, so they are spelled out rather than read from ``os`` or ``mmap``
(which lack several of them, e.g. MFD_* and EFD_*).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Final

KVM_API_VERSION: Final = 12

# Page offsets within the vCPU mmap (units of the host page size).
KVM_PIO_PAGE_OFFSET: Final = 1
KVM_COALESCED_MMIO_PAGE_OFFSET: Final = 2
KVM_DIRTY_LOG_PAGE_OFFSET: Final = 64
KVM_DIRTY_GFN_F_DIRTY: Final = 1 << 0  # struct kvm_dirty_gfn flags: harvestable
KVM_DIRTY_GFN_F_RESET: Final = 1 << 1  # harvested; KVM_RESET_DIRTY_RINGS re-protects it

# Not uapi: the kernel's internal cap on kvm_cpuid2.nent.  KVM_SET_CPUID2
# refuses more entries (E2BIG) and KVM_GET_SUPPORTED_CPUID never returns more,
# so a buffer of this many entries is always large enough.
KVM_MAX_CPUID_ENTRIES: Final = 256

# kvm_userspace_memory_region.flags
KVM_MEM_LOG_DIRTY_PAGES: Final = 1 << 0
KVM_MEM_READONLY: Final = 1 << 1
KVM_MEM_GUEST_MEMFD: Final = 1 << 2

# kvm_pit_config.flags / kvm_pit_state2.flags
KVM_PIT_SPEAKER_DUMMY: Final = 1
KVM_PIT_FLAGS_HPET_LEGACY: Final = 0x00000001
KVM_PIT_FLAGS_SPEAKER_DATA_ON: Final = 0x00000002

# kvm_guest_debug.control
KVM_GUESTDBG_ENABLE: Final = 0x00000001
KVM_GUESTDBG_SINGLESTEP: Final = 0x00000002
KVM_GUESTDBG_USE_SW_BP: Final = 0x00010000
KVM_GUESTDBG_USE_HW_BP: Final = 0x00020000
KVM_GUESTDBG_INJECT_DB: Final = 0x00040000
KVM_GUESTDBG_INJECT_BP: Final = 0x00080000
KVM_GUESTDBG_BLOCKIRQ: Final = 0x00100000

# kvm_run.kvm_valid_regs / kvm_dirty_regs
KVM_SYNC_X86_REGS: Final = 1 << 0
KVM_SYNC_X86_SREGS: Final = 1 << 1
KVM_SYNC_X86_EVENTS: Final = 1 << 2
KVM_SYNC_X86_VALID_FIELDS: Final = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS

# kvm_vcpu_events.flags
KVM_VCPUEVENT_VALID_NMI_PENDING: Final = 0x00000001
KVM_VCPUEVENT_VALID_SIPI_VECTOR: Final = 0x00000002
KVM_VCPUEVENT_VALID_SHADOW: Final = 0x00000004
KVM_VCPUEVENT_VALID_SMM: Final = 0x00000008
KVM_VCPUEVENT_VALID_PAYLOAD: Final = 0x00000010
KVM_VCPUEVENT_VALID_TRIPLE_FAULT: Final = 0x00000020

# kvm_vcpu_events.interrupt.shadow
KVM_X86_SHADOW_INT_MOV_SS: Final = 0x01
KVM_X86_SHADOW_INT_STI: Final = 0x02

# kvm_mp_state.mp_state (not every state is valid on every architecture)
KVM_MP_STATE_RUNNABLE: Final = 0
KVM_MP_STATE_UNINITIALIZED: Final = 1
KVM_MP_STATE_INIT_RECEIVED: Final = 2
KVM_MP_STATE_HALTED: Final = 3
KVM_MP_STATE_SIPI_RECEIVED: Final = 4
KVM_MP_STATE_STOPPED: Final = 5
KVM_MP_STATE_CHECK_STOP: Final = 6
KVM_MP_STATE_OPERATING: Final = 7
KVM_MP_STATE_LOAD: Final = 8
KVM_MP_STATE_AP_RESET_HOLD: Final = 9
KVM_MP_STATE_SUSPENDED: Final = 10

MP_STATE_NAMES: Final[dict[int, str]] = {
    KVM_MP_STATE_RUNNABLE: "RUNNABLE",
    KVM_MP_STATE_UNINITIALIZED: "UNINITIALIZED",
    KVM_MP_STATE_INIT_RECEIVED: "INIT_RECEIVED",
    KVM_MP_STATE_HALTED: "HALTED",
    KVM_MP_STATE_SIPI_RECEIVED: "SIPI_RECEIVED",
    KVM_MP_STATE_STOPPED: "STOPPED",
    KVM_MP_STATE_CHECK_STOP: "CHECK_STOP",
    KVM_MP_STATE_OPERATING: "OPERATING",
    KVM_MP_STATE_LOAD: "LOAD",
    KVM_MP_STATE_AP_RESET_HOLD: "AP_RESET_HOLD",
    KVM_MP_STATE_SUSPENDED: "SUSPENDED",
}

# kvm_ioeventfd.flags
KVM_IOEVENTFD_FLAG_DATAMATCH: Final = 1 << 0
KVM_IOEVENTFD_FLAG_PIO: Final = 1 << 1
KVM_IOEVENTFD_FLAG_DEASSIGN: Final = 1 << 2

# kvm_irqfd.flags
KVM_IRQFD_FLAG_DEASSIGN: Final = 1 << 0
KVM_IRQFD_FLAG_RESAMPLE: Final = 1 << 1

# kvm_irqchip.chip_id
KVM_IRQCHIP_PIC_MASTER: Final = 0
KVM_IRQCHIP_PIC_SLAVE: Final = 1
KVM_IRQCHIP_IOAPIC: Final = 2
KVM_NR_IRQCHIPS: Final = 3

# kvm_cpuid_entry2.flags ("SIGNIFCANT" is the header's own spelling)
KVM_CPUID_FLAG_SIGNIFCANT_INDEX: Final = 1 << 0
KVM_CPUID_FLAG_STATEFUL_FUNC: Final = 1 << 1
KVM_CPUID_FLAG_STATE_READ_NEXT: Final = 1 << 2

# kvm_msr_filter / kvm_msr_filter_range
KVM_MSR_FILTER_READ: Final = 1 << 0
KVM_MSR_FILTER_WRITE: Final = 1 << 1
KVM_MSR_FILTER_DEFAULT_ALLOW: Final = 0
KVM_MSR_FILTER_DEFAULT_DENY: Final = 1 << 0
KVM_MSR_FILTER_MAX_RANGES: Final = 16
KVM_MSR_FILTER_MAX_BITMAP_SIZE: Final = 0x600

# kvm_clock_data.flags
KVM_CLOCK_TSC_STABLE: Final = 2
KVM_CLOCK_REALTIME: Final = 1 << 2
KVM_CLOCK_HOST_TSC: Final = 1 << 3

# kvm_msi.flags
KVM_MSI_VALID_DEVID: Final = 1 << 0

# kvm_sregs2.flags
KVM_SREGS2_FLAGS_PDPTRS_VALID: Final = 1

# KVM_ENABLE_CAP argument values
KVM_X86_DISABLE_EXITS_MWAIT: Final = 1 << 0
KVM_X86_DISABLE_EXITS_HLT: Final = 1 << 1
KVM_X86_DISABLE_EXITS_PAUSE: Final = 1 << 2
KVM_X86_DISABLE_EXITS_CSTATE: Final = 1 << 3
KVM_X2APIC_API_USE_32BIT_IDS: Final = 1 << 0
KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK: Final = 1 << 1
KVM_BUS_LOCK_DETECTION_OFF: Final = 1 << 0
KVM_BUS_LOCK_DETECTION_EXIT: Final = 1 << 1
KVM_X86_NOTIFY_VMEXIT_ENABLED: Final = 1 << 0
KVM_X86_NOTIFY_VMEXIT_USER: Final = 1 << 1
KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE: Final = 1 << 0

# Array bounds fixed by the ABI
KVM_NR_INTERRUPTS: Final = 256
KVM_IOAPIC_NUM_PINS: Final = 24
KVM_APIC_REG_SIZE: Final = 0x400
KVM_MAX_XCRS: Final = 16

# Exception vectors, for kvm_vcpu_events.exception.nr and exit decoding
DE_VECTOR: Final = 0
DB_VECTOR: Final = 1
BP_VECTOR: Final = 3
OF_VECTOR: Final = 4
BR_VECTOR: Final = 5
UD_VECTOR: Final = 6
NM_VECTOR: Final = 7
DF_VECTOR: Final = 8
TS_VECTOR: Final = 10
NP_VECTOR: Final = 11
SS_VECTOR: Final = 12
GP_VECTOR: Final = 13
PF_VECTOR: Final = 14
MF_VECTOR: Final = 16
AC_VECTOR: Final = 17
MC_VECTOR: Final = 18
XM_VECTOR: Final = 19
VE_VECTOR: Final = 20

# --- libc (x86_64 Linux) ---

PROT_NONE: Final = 0x0
PROT_READ: Final = 0x1
PROT_WRITE: Final = 0x2
PROT_EXEC: Final = 0x4

MAP_SHARED: Final = 0x01
MAP_PRIVATE: Final = 0x02
MAP_FIXED: Final = 0x10
MAP_ANONYMOUS: Final = 0x20
MAP_NORESERVE: Final = 0x4000
MAP_POPULATE: Final = 0x8000
MAP_FIXED_NOREPLACE: Final = 0x100000

# mmap's (void *)-1 as an address; compare with int(ffi.cast("uintptr_t", p))
# or cast it back with ffi.cast("void *", MAP_FAILED).
MAP_FAILED: Final = (1 << 64) - 1

MADV_DONTNEED: Final = 4
MADV_REMOVE: Final = 9
MADV_MERGEABLE: Final = 12
MADV_HUGEPAGE: Final = 14
MADV_NOHUGEPAGE: Final = 15

O_RDONLY: Final = 0o0
O_RDWR: Final = 0o2
O_NONBLOCK: Final = 0o4000
O_CLOEXEC: Final = 0o2000000

MFD_CLOEXEC: Final = 0x0001
MFD_ALLOW_SEALING: Final = 0x0002

EFD_SEMAPHORE: Final = 0o1
EFD_NONBLOCK: Final = 0o4000
EFD_CLOEXEC: Final = 0o2000000

FALLOC_FL_KEEP_SIZE: Final = 0x01
FALLOC_FL_PUNCH_HOLE: Final = 0x02
