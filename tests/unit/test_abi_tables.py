"""Internal consistency of kvm_abi's tables and of the kvm_run layout.

These need neither KVM nor a compiler; the comparison with the C headers is
in test_abi_conformance.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kvm_abi
from kvm_abi import CData, caps, constants, exits, ffi, ioctls, libc

# --- exit reasons ------------------------------------------------------------


@pytest.mark.parametrize("reason", range(41))
def test_every_upstream_exit_reason_has_a_name(reason: int) -> None:
    name = exits.EXIT_REASON_NAMES[reason]
    assert getattr(exits, f"KVM_EXIT_{name}") == reason


def test_exit_names_are_short_and_unique() -> None:
    names = list(exits.EXIT_REASON_NAMES.values())
    assert len(names) == len(set(names))
    assert not any(name.startswith("KVM_EXIT_") for name in names)
    assert exits.EXIT_REASON_NAMES[exits.KVM_EXIT_IO] == "IO"
    assert exits.EXIT_REASON_NAMES[exits.KVM_EXIT_MMIO] == "MMIO"


def test_mainline_only_exit_numbers() -> None:
    assert exits.KVM_EXIT_LOONGARCH_IOCSR == 38
    assert exits.KVM_EXIT_MEMORY_FAULT == 39
    assert exits.KVM_EXIT_TDX == 40


def test_unknown_exit_reason_is_kept_visible() -> None:
    assert exits.exit_reason_name(2) == "IO"
    assert exits.exit_reason_name(99) == "UNKNOWN_REASON_99"


def test_sub_code_name_tables_match_constants() -> None:
    for table, prefix in (
        (exits.INTERNAL_ERROR_NAMES, "KVM_INTERNAL_ERROR_"),
        (exits.SYSTEM_EVENT_NAMES, "KVM_SYSTEM_EVENT_"),
        (constants.MP_STATE_NAMES, "KVM_MP_STATE_"),
    ):
        module = constants if prefix == "KVM_MP_STATE_" else exits
        for value, name in table.items():
            assert getattr(module, prefix + name) == value
    assert exits.KVM_EXIT_IO_IN == 0
    assert exits.KVM_EXIT_IO_OUT == 1
    assert exits.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES == 1


# --- capabilities --------------------------------------------------------------

REQUIRED_CAPS = {
    "IRQCHIP": 0,
    "HLT": 1,
    "USER_MEMORY": 3,
    "SET_TSS_ADDR": 4,
    "EXT_CPUID": 7,
    "NR_VCPUS": 9,
    "NR_MEMSLOTS": 10,
    "MP_STATE": 14,
    "COALESCED_MMIO": 15,
    "SYNC_MMU": 16,
    "SET_GUEST_DEBUG": 23,
    "PIT2": 33,
    "IOEVENTFD": 36,
    "SET_IDENTITY_MAP_ADDR": 37,
    "ADJUST_CLOCK": 39,
    "INTERNAL_ERROR_DATA": 40,
    "VCPU_EVENTS": 41,
    "DEBUGREGS": 50,
    "ENABLE_CAP": 54,
    "XSAVE": 55,
    "XCRS": 56,
    "MAX_VCPUS": 66,
    "TSC_DEADLINE_TIMER": 72,
    "SYNC_REGS": 74,
    "READONLY_MEM": 81,
    "MAX_VCPU_ID": 128,
    "X2APIC_API": 129,
    "IMMEDIATE_EXIT": 136,
    "GET_MSR_FEATURES": 153,
    "COALESCED_PIO": 162,
    "X86_USER_SPACE_MSR": 188,
    "EXIT_HYPERCALL": 201,
    "MEMORY_FAULT_INFO": 232,
}


@pytest.mark.parametrize(("name", "number"), sorted(REQUIRED_CAPS.items()))
def test_required_capabilities(name: str, number: int) -> None:
    assert getattr(caps, f"KVM_CAP_{name}") == number
    assert caps.CAP_NAMES[number] == name


def test_cap_names_cover_every_constant_once() -> None:
    constants_ = {n: v for n, v in vars(caps).items() if n.startswith("KVM_CAP_")}
    assert len(set(constants_.values())) == len(constants_), "two capabilities share a number"
    assert {f"KVM_CAP_{name}": number for number, name in caps.CAP_NAMES.items()} == constants_
    assert caps.cap_name(9999) == "UNKNOWN_CAP_9999"


# --- ioctls ------------------------------------------------------------------

GROUPS = {
    "system": ioctls.SYSTEM_IOCTLS,
    "vm": ioctls.VM_IOCTLS,
    "vcpu": ioctls.VCPU_IOCTLS,
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_no_duplicate_numbers_within_one_fd_group(group: str) -> None:
    table = GROUPS[group]
    seen: dict[int, str] = {}
    for name, number in table.items():
        assert number not in seen, f"{name} and {seen[number]} share 0x{number:08X} on the {group} fd"
        seen[number] = name


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_table_entries_are_the_module_constants(group: str) -> None:
    for name, number in GROUPS[group].items():
        assert getattr(ioctls, name) == number
        assert (number >> 8) & 0xFF == ioctls.KVMIO, name


REQUIRED_IOCTLS = {
    "system": [
        "KVM_GET_API_VERSION",
        "KVM_CREATE_VM",
        "KVM_CHECK_EXTENSION",
        "KVM_GET_VCPU_MMAP_SIZE",
        "KVM_GET_SUPPORTED_CPUID",
        "KVM_GET_MSR_INDEX_LIST",
    ],
    "vm": [
        "KVM_CHECK_EXTENSION",
        "KVM_SET_USER_MEMORY_REGION",
        "KVM_CREATE_VCPU",
        "KVM_SET_TSS_ADDR",
        "KVM_SET_IDENTITY_MAP_ADDR",
        "KVM_CREATE_IRQCHIP",
        "KVM_CREATE_PIT2",
        "KVM_IRQ_LINE",
        "KVM_IOEVENTFD",
        "KVM_REGISTER_COALESCED_MMIO",
        "KVM_UNREGISTER_COALESCED_MMIO",
        "KVM_ENABLE_CAP",
        "KVM_GET_CLOCK",
        "KVM_SET_CLOCK",
        "KVM_SET_BOOT_CPU_ID",
    ],
    "vcpu": [
        "KVM_RUN",
        "KVM_GET_REGS",
        "KVM_SET_REGS",
        "KVM_GET_SREGS",
        "KVM_SET_SREGS",
        "KVM_GET_FPU",
        "KVM_SET_FPU",
        "KVM_GET_MSRS",
        "KVM_SET_MSRS",
        "KVM_SET_CPUID2",
        "KVM_GET_CPUID2",
        "KVM_SET_GUEST_DEBUG",
        "KVM_GET_VCPU_EVENTS",
        "KVM_SET_VCPU_EVENTS",
        "KVM_TRANSLATE",
        "KVM_INTERRUPT",
        "KVM_NMI",
        "KVM_GET_MP_STATE",
        "KVM_SET_MP_STATE",
        "KVM_GET_XCRS",
        "KVM_SET_XCRS",
        "KVM_KVMCLOCK_CTRL",
        "KVM_ENABLE_CAP",
    ],
}


@pytest.mark.parametrize("group", sorted(REQUIRED_IOCTLS))
def test_required_ioctls_are_in_their_group(group: str) -> None:
    missing = [name for name in REQUIRED_IOCTLS[group] if name not in GROUPS[group]]
    assert not missing


def test_well_known_ioctl_numbers() -> None:
    assert ioctls.KVM_RUN == 0xAE80
    assert ioctls.KVM_GET_API_VERSION == 0xAE00
    assert ioctls.KVM_SET_USER_MEMORY_REGION == 0x4020AE46
    assert ioctls.KVM_GET_REGS == 0x8090AE81
    assert ioctls.KVM_ENABLE_CAP == 0x4068AEA3
    assert ioctls.KVM_CHECK_EXTENSION == 0xAE03


def test_encoders_reject_fields_that_would_overflow() -> None:
    with pytest.raises(ValueError):
        ioctls._IOW(ioctls.KVMIO, 0x01, 1 << 14)
    with pytest.raises(ValueError):
        ioctls._IO(ioctls.KVMIO, 0x100)
    assert ioctls._IOWR(ioctls.KVMIO, 0x05, "struct kvm_cpuid2") == 0xC008AE05


def test_every_ioctl_row_names_a_real_capability() -> None:
    # The capability comments are documentation people act on; a typo there
    # would send them looking for a capability that does not exist.
    source = Path(ioctls.__file__).read_text()
    rows = re.findall(r"^(?:KVM_\w+: Final = _IO|\w+_IOCTLS\[).*#\s*(.*)$", source, re.MULTILINE)
    assert len(rows) >= len(ioctls.ALL_IOCTLS)
    for comment in rows:
        for cap in re.findall(r"KVM_CAP_\w+", comment):
            assert hasattr(caps, cap), f"ioctls.py names unknown capability {cap}"
        assert comment.startswith(("basic", "KVM_CAP_")), comment


def test_ioctl_name_lookup() -> None:
    assert ioctls.ioctl_name(ioctls.KVM_RUN) == "KVM_RUN"
    assert ioctls.ioctl_name(ioctls.KVM_RUN, ioctls.SYSTEM_IOCTLS) == "0x0000AE80"


# --- struct kvm_run ----------------------------------------------------------

EXIT_UNION_MEMBERS = [
    "hw",
    "fail_entry",
    "ex",
    "io",
    "debug",
    "mmio",
    "iocsr_io",
    "hypercall",
    "tpr_access",
    "s390_sieic",
    "s390_reset_flags",
    "s390_ucontrol",
    "dcr",
    "internal",
    "emulation_failure",
    "osi",
    "papr_hcall",
    "s390_tsch",
    "epr",
    "system_event",
    "s390_stsi",
    "eoi",
    "hyperv",
    "arm_nisv",
    "msr",
    "xen",
    "riscv_sbi",
    "riscv_csr",
    "notify",
    "memory_fault",
    "padding",
]


@pytest.mark.parametrize("member", EXIT_UNION_MEMBERS)
def test_exit_union_member_starts_at_32_and_fits(member: str) -> None:
    assert ffi.offsetof("struct kvm_run", member) == 32
    run_fields = dict(ffi.typeof("struct kvm_run").fields)
    assert ffi.sizeof(run_fields[member].type) <= 256


def test_kvm_run_layout() -> None:
    fields = dict(ffi.typeof("struct kvm_run").fields)
    assert ffi.sizeof(fields["padding"].type) == 256
    assert ffi.offsetof("struct kvm_run", "exit_reason") == 8
    assert ffi.offsetof("struct kvm_run", "immediate_exit") == 1
    # The exit union is 256 bytes at 32, so the sync-regs header follows at
    # 32 + 256 = 288 and the 2048-byte sync-regs union at 304.
    assert ffi.offsetof("struct kvm_run", "kvm_valid_regs") == 288
    assert ffi.offsetof("struct kvm_run", "kvm_dirty_regs") == 296
    assert ffi.offsetof("struct kvm_run", "s") == 304
    assert ffi.sizeof(fields["s"].type) == 2048
    assert ffi.sizeof("struct kvm_run") == 304 + 2048
    assert ffi.offsetof("struct kvm_run", "s", "regs") == 304
    assert ffi.sizeof("struct kvm_sync_regs") == 520


def test_exit_payload_offsets_used_on_the_hot_path() -> None:
    assert ffi.offsetof("struct kvm_run", "io", "port") == 34
    assert ffi.offsetof("struct kvm_run", "io", "data_offset") == 40
    assert ffi.offsetof("struct kvm_run", "mmio", "phys_addr") == 32
    assert ffi.offsetof("struct kvm_run", "mmio", "data") == 40
    assert ffi.offsetof("struct kvm_run", "mmio", "len") == 48
    assert ffi.offsetof("struct kvm_run", "mmio", "is_write") == 52
    assert ffi.offsetof("struct kvm_run", "hypercall", "longmode") == 96
    assert ffi.offsetof("struct kvm_run", "hypercall", "flags") == 96
    assert ffi.offsetof("struct kvm_run", "emulation_failure", "insn_size") == 48
    assert ffi.offsetof("struct kvm_run", "memory_fault", "gpa") == 40
    assert ffi.offsetof("struct kvm_run", "iocsr_io", "is_write") == 52


def test_mainline_kvm_run_has_no_spp_member() -> None:
    def names(ctype: object) -> set[str]:
        out: set[str] = set()
        for name, fld in ctype.fields:  # type: ignore[attr-defined]
            out.add(name)
            if fld.type.kind in ("struct", "union"):
                out |= names(fld.type)
        return out

    assert not any("spp" in name.lower() for name in names(ffi.typeof("struct kvm_run")))
    for table in (exits.EXIT_REASON_NAMES, caps.CAP_NAMES):
        assert not any("SPP" in name for name in table.values())
    assert not any("SPP" in name or "SUBPAGE" in name for name in ioctls.ALL_IOCTLS)


def test_flexible_arrays() -> None:
    assert ffi.sizeof("struct kvm_msrs") == 8
    assert ffi.sizeof("struct kvm_cpuid2") == 8
    assert ffi.sizeof("struct kvm_cpuid_entry2") == 40
    msrs: CData = ffi.new("struct kvm_msrs *", {"nmsrs": 3, "entries": 3})
    msrs.entries[2].index = 0xC0000080
    assert ffi.sizeof(msrs[0]) == 8 + 3 * 16


# --- libc --------------------------------------------------------------------


def test_ioctl_is_declared_with_fixed_arguments() -> None:
    ioctl: CData = libc.ioctl
    ctype = ffi.typeof(ioctl)
    assert ctype.ellipsis is False
    assert [arg.cname for arg in ctype.args] == ["int", "unsigned long", "void *"]
    assert ctype.result.cname == "int"


def test_libc_symbols_resolve() -> None:
    for name in (
        "ioctl",
        "open",
        "close",
        "read",
        "write",
        "mmap",
        "munmap",
        "mprotect",
        "madvise",
        "memfd_create",
        "ftruncate",
        "eventfd",
        "getpid",
        "gettid",
    ):
        assert getattr(libc, name) is not None


def test_memfd_mmap_roundtrip() -> None:
    fd = libc.memfd_create(b"kvm_abi-test", constants.MFD_CLOEXEC)
    assert fd >= 0, ffi.errno
    try:
        assert libc.ftruncate(fd, 8192) == 0
        addr = libc.mmap(ffi.NULL, 8192, constants.PROT_READ | constants.PROT_WRITE, constants.MAP_SHARED, fd, 0)
        assert addr != ffi.cast("void *", constants.MAP_FAILED)
        try:
            ffi.memmove(addr, b"abc", 3)
            buf = ffi.new("char[3]")
            assert libc.pread(fd, buf, 3, 0) == 3
            assert ffi.buffer(buf)[:] == b"abc"
        finally:
            assert libc.munmap(addr, 8192) == 0
    finally:
        libc.close(fd)


def test_eventfd_and_errno() -> None:
    fd = libc.eventfd(0, constants.EFD_CLOEXEC | constants.EFD_NONBLOCK)
    assert fd >= 0
    try:
        counter = ffi.new("uint64_t *", 5)
        assert libc.write(fd, counter, 8) == 8
        counter[0] = 0
        assert libc.read(fd, counter, 8) == 8
        assert counter[0] == 5
        # Nothing left to read: a nonblocking eventfd fails with EAGAIN.
        assert libc.read(fd, counter, 8) == -1
        assert ffi.errno == 11
    finally:
        libc.close(fd)


def test_ioctl_on_a_non_kvm_fd_fails_cleanly() -> None:
    fd = libc.eventfd(0, constants.EFD_CLOEXEC)
    try:
        assert libc.ioctl(fd, ioctls.KVM_GET_API_VERSION, ffi.cast("void *", 0)) == -1
        assert ffi.errno == 25  # ENOTTY
    finally:
        libc.close(fd)


def test_package_exports() -> None:
    assert kvm_abi.ffi is ffi
    assert kvm_abi.libc is libc
    for name in ("caps", "constants", "exits", "ioctls", "spp"):
        assert hasattr(kvm_abi, name)
