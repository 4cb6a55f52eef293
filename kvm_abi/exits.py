"""``kvm_run.exit_reason`` values and the sub-codes carried inside exits.

Every upstream reason is listed, including those of other architectures: a
reason this host should never produce still has to be named when it shows up,
because a number that nobody recognises is the first sign of a patched or
mismatched kernel.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Final

KVM_EXIT_UNKNOWN: Final = 0
KVM_EXIT_EXCEPTION: Final = 1
KVM_EXIT_IO: Final = 2
KVM_EXIT_HYPERCALL: Final = 3
KVM_EXIT_DEBUG: Final = 4
KVM_EXIT_HLT: Final = 5
KVM_EXIT_MMIO: Final = 6
KVM_EXIT_IRQ_WINDOW_OPEN: Final = 7
KVM_EXIT_SHUTDOWN: Final = 8
KVM_EXIT_FAIL_ENTRY: Final = 9
KVM_EXIT_INTR: Final = 10
KVM_EXIT_SET_TPR: Final = 11
KVM_EXIT_TPR_ACCESS: Final = 12
KVM_EXIT_S390_SIEIC: Final = 13
KVM_EXIT_S390_RESET: Final = 14
KVM_EXIT_DCR: Final = 15
KVM_EXIT_NMI: Final = 16
KVM_EXIT_INTERNAL_ERROR: Final = 17
KVM_EXIT_OSI: Final = 18
KVM_EXIT_PAPR_HCALL: Final = 19
KVM_EXIT_S390_UCONTROL: Final = 20
KVM_EXIT_WATCHDOG: Final = 21
KVM_EXIT_S390_TSCH: Final = 22
KVM_EXIT_EPR: Final = 23
KVM_EXIT_SYSTEM_EVENT: Final = 24
KVM_EXIT_S390_STSI: Final = 25
KVM_EXIT_IOAPIC_EOI: Final = 26
KVM_EXIT_HYPERV: Final = 27
# 28 and 29 are also the numbers the unmerged SPP patches used for
# KVM_EXIT_SPP; see kvm_abi.spp before trusting either from a patched kernel.
KVM_EXIT_ARM_NISV: Final = 28
KVM_EXIT_X86_RDMSR: Final = 29
KVM_EXIT_X86_WRMSR: Final = 30
KVM_EXIT_DIRTY_RING_FULL: Final = 31
KVM_EXIT_AP_RESET_HOLD: Final = 32
KVM_EXIT_X86_BUS_LOCK: Final = 33
KVM_EXIT_XEN: Final = 34
KVM_EXIT_RISCV_SBI: Final = 35
KVM_EXIT_RISCV_CSR: Final = 36
KVM_EXIT_NOTIFY: Final = 37
# Newer than the 6.1 uapi header: 38 arrived in 6.7, 39 in 6.8, 40 in 6.16.
KVM_EXIT_LOONGARCH_IOCSR: Final = 38
KVM_EXIT_MEMORY_FAULT: Final = 39
KVM_EXIT_TDX: Final = 40

EXIT_REASON_NAMES: Final[dict[int, str]] = {
    KVM_EXIT_UNKNOWN: "UNKNOWN",
    KVM_EXIT_EXCEPTION: "EXCEPTION",
    KVM_EXIT_IO: "IO",
    KVM_EXIT_HYPERCALL: "HYPERCALL",
    KVM_EXIT_DEBUG: "DEBUG",
    KVM_EXIT_HLT: "HLT",
    KVM_EXIT_MMIO: "MMIO",
    KVM_EXIT_IRQ_WINDOW_OPEN: "IRQ_WINDOW_OPEN",
    KVM_EXIT_SHUTDOWN: "SHUTDOWN",
    KVM_EXIT_FAIL_ENTRY: "FAIL_ENTRY",
    KVM_EXIT_INTR: "INTR",
    KVM_EXIT_SET_TPR: "SET_TPR",
    KVM_EXIT_TPR_ACCESS: "TPR_ACCESS",
    KVM_EXIT_S390_SIEIC: "S390_SIEIC",
    KVM_EXIT_S390_RESET: "S390_RESET",
    KVM_EXIT_DCR: "DCR",
    KVM_EXIT_NMI: "NMI",
    KVM_EXIT_INTERNAL_ERROR: "INTERNAL_ERROR",
    KVM_EXIT_OSI: "OSI",
    KVM_EXIT_PAPR_HCALL: "PAPR_HCALL",
    KVM_EXIT_S390_UCONTROL: "S390_UCONTROL",
    KVM_EXIT_WATCHDOG: "WATCHDOG",
    KVM_EXIT_S390_TSCH: "S390_TSCH",
    KVM_EXIT_EPR: "EPR",
    KVM_EXIT_SYSTEM_EVENT: "SYSTEM_EVENT",
    KVM_EXIT_S390_STSI: "S390_STSI",
    KVM_EXIT_IOAPIC_EOI: "IOAPIC_EOI",
    KVM_EXIT_HYPERV: "HYPERV",
    KVM_EXIT_ARM_NISV: "ARM_NISV",
    KVM_EXIT_X86_RDMSR: "X86_RDMSR",
    KVM_EXIT_X86_WRMSR: "X86_WRMSR",
    KVM_EXIT_DIRTY_RING_FULL: "DIRTY_RING_FULL",
    KVM_EXIT_AP_RESET_HOLD: "AP_RESET_HOLD",
    KVM_EXIT_X86_BUS_LOCK: "X86_BUS_LOCK",
    KVM_EXIT_XEN: "XEN",
    KVM_EXIT_RISCV_SBI: "RISCV_SBI",
    KVM_EXIT_RISCV_CSR: "RISCV_CSR",
    KVM_EXIT_NOTIFY: "NOTIFY",
    KVM_EXIT_LOONGARCH_IOCSR: "LOONGARCH_IOCSR",
    KVM_EXIT_MEMORY_FAULT: "MEMORY_FAULT",
    KVM_EXIT_TDX: "TDX",
}

# kvm_run.io.direction
KVM_EXIT_IO_IN: Final = 0
KVM_EXIT_IO_OUT: Final = 1

# kvm_run.internal.suberror
KVM_INTERNAL_ERROR_EMULATION: Final = 1
KVM_INTERNAL_ERROR_SIMUL_EX: Final = 2
KVM_INTERNAL_ERROR_DELIVERY_EV: Final = 3
KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: Final = 4

INTERNAL_ERROR_NAMES: Final[dict[int, str]] = {
    KVM_INTERNAL_ERROR_EMULATION: "EMULATION",
    KVM_INTERNAL_ERROR_SIMUL_EX: "SIMUL_EX",
    KVM_INTERNAL_ERROR_DELIVERY_EV: "DELIVERY_EV",
    KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: "UNEXPECTED_EXIT_REASON",
}

# kvm_run.emulation_failure.flags: insn_size/insn_bytes are valid only when
# this is set (KVM_CAP_EXIT_ON_EMULATION_FAILURE).
KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES: Final = 1 << 0

# kvm_run.system_event.type
KVM_SYSTEM_EVENT_SHUTDOWN: Final = 1
KVM_SYSTEM_EVENT_RESET: Final = 2
KVM_SYSTEM_EVENT_CRASH: Final = 3
KVM_SYSTEM_EVENT_WAKEUP: Final = 4
KVM_SYSTEM_EVENT_SUSPEND: Final = 5
KVM_SYSTEM_EVENT_SEV_TERM: Final = 6
KVM_SYSTEM_EVENT_TDX_FATAL: Final = 7

SYSTEM_EVENT_NAMES: Final[dict[int, str]] = {
    KVM_SYSTEM_EVENT_SHUTDOWN: "SHUTDOWN",
    KVM_SYSTEM_EVENT_RESET: "RESET",
    KVM_SYSTEM_EVENT_CRASH: "CRASH",
    KVM_SYSTEM_EVENT_WAKEUP: "WAKEUP",
    KVM_SYSTEM_EVENT_SUSPEND: "SUSPEND",
    KVM_SYSTEM_EVENT_SEV_TERM: "SEV_TERM",
    KVM_SYSTEM_EVENT_TDX_FATAL: "TDX_FATAL",
}

# kvm_run.msr.reason (KVM_EXIT_X86_RDMSR / WRMSR); also the bit mask given to
# KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR) to choose which cases exit.
KVM_MSR_EXIT_REASON_INVAL: Final = 1 << 0
KVM_MSR_EXIT_REASON_UNKNOWN: Final = 1 << 1
KVM_MSR_EXIT_REASON_FILTER: Final = 1 << 2

# kvm_run.hyperv.type
KVM_EXIT_HYPERV_SYNIC: Final = 1
KVM_EXIT_HYPERV_HCALL: Final = 2
KVM_EXIT_HYPERV_SYNDBG: Final = 3

# kvm_run.xen.type
KVM_EXIT_XEN_HCALL: Final = 1

# kvm_run.notify.flags
KVM_NOTIFY_CONTEXT_INVALID: Final = 1 << 0

# kvm_run.hypercall.flags (mainline; 6.1 headers only know "longmode")
KVM_EXIT_HYPERCALL_LONG_MODE: Final = 1 << 0

# kvm_run.memory_fault.flags
KVM_MEMORY_EXIT_FLAG_PRIVATE: Final = 1 << 3

# kvm_run.flags
KVM_RUN_X86_SMM: Final = 1 << 0
KVM_RUN_X86_BUS_LOCK: Final = 1 << 1


def exit_reason_name(reason: int) -> str:
    """Short name of an exit reason; unknown numbers stay visible as such."""
    return EXIT_REASON_NAMES.get(reason, f"UNKNOWN_REASON_{reason}")
