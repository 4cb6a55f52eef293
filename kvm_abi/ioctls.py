"""KVM ioctl request numbers for x86_64, grouped by the descriptor they act on.

Numbers are computed, not written out: the size field of each request comes
from ``ffi.sizeof`` of the declared struct, so a layout mistake in the
declarations also shows up as a wrong request number (which the conformance
test compares with the C header).
"""

from __future__ import annotations

from kvm_abi._ffi import ffi

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Final

KVMIO: Final = 0xAE

_IOC_NRBITS: Final = 8
_IOC_TYPEBITS: Final = 8
_IOC_SIZEBITS: Final = 14
_IOC_NRSHIFT: Final = 0
_IOC_TYPESHIFT: Final = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT: Final = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT: Final = _IOC_SIZESHIFT + _IOC_SIZEBITS

_IOC_NONE: Final = 0
_IOC_WRITE: Final = 1
_IOC_READ: Final = 2


def _size(size: int | str) -> int:
    return size if isinstance(size, int) else ffi.sizeof(size)


def _IOC(direction: int, type_: int, nr: int, size: int | str) -> int:
    nbytes = _size(size)
    # The size field is 14 bits wide; a larger struct would silently wrap
    # into the direction bits and yield another, valid-looking request.
    if not 0 <= nbytes < (1 << _IOC_SIZEBITS):
        raise ValueError(f"ioctl argument size {nbytes} does not fit in 14 bits")
    if not (0 <= nr < 256 and 0 <= type_ < 256):
        raise ValueError(f"ioctl type 0x{type_:x} / nr 0x{nr:x} out of range")
    return (direction << _IOC_DIRSHIFT) | (nbytes << _IOC_SIZESHIFT) | (type_ << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT)


def _IO(type_: int, nr: int) -> int:
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: int, nr: int, size: int | str) -> int:
    return _IOC(_IOC_READ, type_, nr, size)


def _IOW(type_: int, nr: int, size: int | str) -> int:
    return _IOC(_IOC_WRITE, type_, nr, size)


def _IOWR(type_: int, nr: int, size: int | str) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)


def _mark() -> int:
    return len(globals())


def _defined_since(mark: int) -> dict[str, int]:
    # Module globals keep definition order, so the KVM_* names added after a
    # mark are exactly the rows of that section of the table below.
    names = list(globals())[mark:]
    return {name: globals()[name] for name in names if name.startswith("KVM_")}


# The table, one section per kind of file descriptor.  The comment on each
# row names the capability KVM_CHECK_EXTENSION must report before the ioctl
# may be used ("basic": guaranteed by KVM_API_VERSION 12).  An ioctl accepted
# on several kinds of fd is defined in the first section and added to the
# others after it, with the capability it needs there.

# --- system fd: open("/dev/kvm") ---
_start = _mark()
KVM_GET_API_VERSION: Final = _IO(KVMIO, 0x00)  # basic
KVM_CREATE_VM: Final = _IO(KVMIO, 0x01)  # basic
KVM_GET_MSR_INDEX_LIST: Final = _IOWR(KVMIO, 0x02, "struct kvm_msr_list")  # basic
KVM_CHECK_EXTENSION: Final = _IO(KVMIO, 0x03)  # basic
KVM_GET_VCPU_MMAP_SIZE: Final = _IO(KVMIO, 0x04)  # basic
KVM_GET_SUPPORTED_CPUID: Final = _IOWR(KVMIO, 0x05, "struct kvm_cpuid2")  # KVM_CAP_EXT_CPUID
KVM_GET_EMULATED_CPUID: Final = _IOWR(KVMIO, 0x09, "struct kvm_cpuid2")  # KVM_CAP_EXT_EMUL_CPUID
KVM_GET_MSR_FEATURE_INDEX_LIST: Final = _IOWR(KVMIO, 0x0A, "struct kvm_msr_list")  # KVM_CAP_GET_MSR_FEATURES
KVM_GET_MSRS: Final = _IOWR(KVMIO, 0x88, "struct kvm_msrs")  # KVM_CAP_GET_MSR_FEATURES
KVM_GET_SUPPORTED_HV_CPUID: Final = _IOWR(KVMIO, 0xC1, "struct kvm_cpuid2")  # KVM_CAP_SYS_HYPERV_CPUID
SYSTEM_IOCTLS: Final[dict[str, int]] = _defined_since(_start)

# --- VM fd: returned by KVM_CREATE_VM ---
_start = _mark()
KVM_CREATE_VCPU: Final = _IO(KVMIO, 0x41)  # basic
KVM_GET_DIRTY_LOG: Final = _IOW(KVMIO, 0x42, "struct kvm_dirty_log")  # basic
KVM_RESET_DIRTY_RINGS: Final = _IO(KVMIO, 0xC7)  # KVM_CAP_DIRTY_LOG_RING
KVM_SET_USER_MEMORY_REGION: Final = _IOW(KVMIO, 0x46, "struct kvm_userspace_memory_region")  # KVM_CAP_USER_MEMORY
KVM_SET_TSS_ADDR: Final = _IO(KVMIO, 0x47)  # KVM_CAP_SET_TSS_ADDR
KVM_SET_IDENTITY_MAP_ADDR: Final = _IOW(KVMIO, 0x48, "__u64")  # KVM_CAP_SET_IDENTITY_MAP_ADDR
KVM_SET_USER_MEMORY_REGION2: Final = _IOW(KVMIO, 0x49, "struct kvm_userspace_memory_region2")  # KVM_CAP_USER_MEMORY2
KVM_CREATE_IRQCHIP: Final = _IO(KVMIO, 0x60)  # KVM_CAP_IRQCHIP
KVM_IRQ_LINE: Final = _IOW(KVMIO, 0x61, "struct kvm_irq_level")  # KVM_CAP_IRQCHIP
KVM_GET_IRQCHIP: Final = _IOWR(KVMIO, 0x62, "struct kvm_irqchip")  # KVM_CAP_IRQCHIP
# _IOR although the data flows into the kernel: the header's number is what
# the kernel matches, direction bits included.
KVM_SET_IRQCHIP: Final = _IOR(KVMIO, 0x63, "struct kvm_irqchip")  # KVM_CAP_IRQCHIP
KVM_IRQ_LINE_STATUS: Final = _IOWR(KVMIO, 0x67, "struct kvm_irq_level")  # KVM_CAP_IRQ_INJECT_STATUS
# zone.pio = 1 additionally needs KVM_CAP_COALESCED_PIO.
KVM_REGISTER_COALESCED_MMIO: Final = _IOW(KVMIO, 0x67, "struct kvm_coalesced_mmio_zone")  # KVM_CAP_COALESCED_MMIO
KVM_UNREGISTER_COALESCED_MMIO: Final = _IOW(KVMIO, 0x68, "struct kvm_coalesced_mmio_zone")  # KVM_CAP_COALESCED_MMIO
KVM_REINJECT_CONTROL: Final = _IO(KVMIO, 0x71)  # KVM_CAP_REINJECT_CONTROL
KVM_IRQFD: Final = _IOW(KVMIO, 0x76, "struct kvm_irqfd")  # KVM_CAP_IRQFD
KVM_CREATE_PIT2: Final = _IOW(KVMIO, 0x77, "struct kvm_pit_config")  # KVM_CAP_PIT2
KVM_SET_BOOT_CPU_ID: Final = _IO(KVMIO, 0x78)  # KVM_CAP_SET_BOOT_CPU_ID
KVM_IOEVENTFD: Final = _IOW(KVMIO, 0x79, "struct kvm_ioeventfd")  # KVM_CAP_IOEVENTFD
KVM_SET_CLOCK: Final = _IOW(KVMIO, 0x7B, "struct kvm_clock_data")  # KVM_CAP_ADJUST_CLOCK
KVM_GET_CLOCK: Final = _IOR(KVMIO, 0x7C, "struct kvm_clock_data")  # KVM_CAP_ADJUST_CLOCK
KVM_GET_PIT2: Final = _IOR(KVMIO, 0x9F, "struct kvm_pit_state2")  # KVM_CAP_PIT_STATE2
KVM_SET_PIT2: Final = _IOW(KVMIO, 0xA0, "struct kvm_pit_state2")  # KVM_CAP_PIT_STATE2
KVM_SET_TSC_KHZ: Final = _IO(KVMIO, 0xA2)  # KVM_CAP_VM_TSC_CONTROL
KVM_GET_TSC_KHZ: Final = _IO(KVMIO, 0xA3)  # KVM_CAP_VM_TSC_CONTROL
KVM_ENABLE_CAP: Final = _IOW(KVMIO, 0xA3, "struct kvm_enable_cap")  # KVM_CAP_ENABLE_CAP_VM
KVM_SIGNAL_MSI: Final = _IOW(KVMIO, 0xA5, "struct kvm_msi")  # KVM_CAP_SIGNAL_MSI
KVM_X86_SET_MSR_FILTER: Final = _IOW(KVMIO, 0xC6, "struct kvm_msr_filter")  # KVM_CAP_X86_MSR_FILTER
KVM_GET_STATS_FD: Final = _IO(KVMIO, 0xCE)  # KVM_CAP_BINARY_STATS_FD
VM_IOCTLS: Final[dict[str, int]] = _defined_since(_start)
VM_IOCTLS["KVM_CHECK_EXTENSION"] = KVM_CHECK_EXTENSION  # KVM_CAP_CHECK_EXTENSION_VM

# --- vCPU fd: returned by KVM_CREATE_VCPU ---
_start = _mark()
KVM_RUN: Final = _IO(KVMIO, 0x80)  # basic
KVM_GET_REGS: Final = _IOR(KVMIO, 0x81, "struct kvm_regs")  # basic
KVM_SET_REGS: Final = _IOW(KVMIO, 0x82, "struct kvm_regs")  # basic
KVM_GET_SREGS: Final = _IOR(KVMIO, 0x83, "struct kvm_sregs")  # basic
KVM_SET_SREGS: Final = _IOW(KVMIO, 0x84, "struct kvm_sregs")  # basic
KVM_TRANSLATE: Final = _IOWR(KVMIO, 0x85, "struct kvm_translation")  # basic
KVM_INTERRUPT: Final = _IOW(KVMIO, 0x86, "struct kvm_interrupt")  # basic; only without KVM_CREATE_IRQCHIP
KVM_SET_MSRS: Final = _IOW(KVMIO, 0x89, "struct kvm_msrs")  # basic
KVM_SET_SIGNAL_MASK: Final = _IOW(KVMIO, 0x8B, "struct kvm_signal_mask")  # basic
KVM_GET_FPU: Final = _IOR(KVMIO, 0x8C, "struct kvm_fpu")  # basic
KVM_SET_FPU: Final = _IOW(KVMIO, 0x8D, "struct kvm_fpu")  # basic
KVM_GET_LAPIC: Final = _IOR(KVMIO, 0x8E, "struct kvm_lapic_state")  # KVM_CAP_IRQCHIP
KVM_SET_LAPIC: Final = _IOW(KVMIO, 0x8F, "struct kvm_lapic_state")  # KVM_CAP_IRQCHIP
KVM_SET_CPUID2: Final = _IOW(KVMIO, 0x90, "struct kvm_cpuid2")  # KVM_CAP_EXT_CPUID
KVM_GET_CPUID2: Final = _IOWR(KVMIO, 0x91, "struct kvm_cpuid2")  # KVM_CAP_EXT_CPUID
KVM_GET_MP_STATE: Final = _IOR(KVMIO, 0x98, "struct kvm_mp_state")  # KVM_CAP_MP_STATE
KVM_SET_MP_STATE: Final = _IOW(KVMIO, 0x99, "struct kvm_mp_state")  # KVM_CAP_MP_STATE
KVM_NMI: Final = _IO(KVMIO, 0x9A)  # KVM_CAP_USER_NMI
KVM_SET_GUEST_DEBUG: Final = _IOW(KVMIO, 0x9B, "struct kvm_guest_debug")  # KVM_CAP_SET_GUEST_DEBUG
KVM_GET_VCPU_EVENTS: Final = _IOR(KVMIO, 0x9F, "struct kvm_vcpu_events")  # KVM_CAP_VCPU_EVENTS
KVM_SET_VCPU_EVENTS: Final = _IOW(KVMIO, 0xA0, "struct kvm_vcpu_events")  # KVM_CAP_VCPU_EVENTS
KVM_GET_DEBUGREGS: Final = _IOR(KVMIO, 0xA1, "struct kvm_debugregs")  # KVM_CAP_DEBUGREGS
KVM_SET_DEBUGREGS: Final = _IOW(KVMIO, 0xA2, "struct kvm_debugregs")  # KVM_CAP_DEBUGREGS
KVM_GET_XSAVE: Final = _IOR(KVMIO, 0xA4, "struct kvm_xsave")  # KVM_CAP_XSAVE
KVM_SET_XSAVE: Final = _IOW(KVMIO, 0xA5, "struct kvm_xsave")  # KVM_CAP_XSAVE
KVM_GET_XCRS: Final = _IOR(KVMIO, 0xA6, "struct kvm_xcrs")  # KVM_CAP_XCRS
KVM_SET_XCRS: Final = _IOW(KVMIO, 0xA7, "struct kvm_xcrs")  # KVM_CAP_XCRS
KVM_KVMCLOCK_CTRL: Final = _IO(KVMIO, 0xAD)  # KVM_CAP_KVMCLOCK_CTRL
KVM_SMI: Final = _IO(KVMIO, 0xB7)  # KVM_CAP_X86_SMM
KVM_GET_SREGS2: Final = _IOR(KVMIO, 0xCC, "struct kvm_sregs2")  # KVM_CAP_SREGS2
KVM_SET_SREGS2: Final = _IOW(KVMIO, 0xCD, "struct kvm_sregs2")  # KVM_CAP_SREGS2
KVM_GET_XSAVE2: Final = _IOR(KVMIO, 0xCF, "struct kvm_xsave")  # KVM_CAP_XSAVE2
VCPU_IOCTLS: Final[dict[str, int]] = _defined_since(_start)
VCPU_IOCTLS["KVM_GET_MSRS"] = KVM_GET_MSRS  # basic
VCPU_IOCTLS["KVM_SET_TSC_KHZ"] = KVM_SET_TSC_KHZ  # KVM_CAP_TSC_CONTROL
VCPU_IOCTLS["KVM_GET_TSC_KHZ"] = KVM_GET_TSC_KHZ  # KVM_CAP_GET_TSC_KHZ
VCPU_IOCTLS["KVM_ENABLE_CAP"] = KVM_ENABLE_CAP  # KVM_CAP_ENABLE_CAP
VCPU_IOCTLS["KVM_GET_SUPPORTED_HV_CPUID"] = KVM_GET_SUPPORTED_HV_CPUID  # KVM_CAP_HYPERV_CPUID
VCPU_IOCTLS["KVM_GET_STATS_FD"] = KVM_GET_STATS_FD  # KVM_CAP_BINARY_STATS_FD
del _start

ALL_IOCTLS: Final[dict[str, int]] = {**SYSTEM_IOCTLS, **VM_IOCTLS, **VCPU_IOCTLS}


def ioctl_name(number: int, group: dict[str, int] | None = None) -> str:
    """Name of a request number within one fd group (all groups by default)."""
    table = ALL_IOCTLS if group is None else group
    for name, value in table.items():
        if value == number:
            return name
    return f"0x{number:08X}"
