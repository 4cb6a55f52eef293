"""`Kvm`: the /dev/kvm system file descriptor."""

from __future__ import annotations

import errno
import os

from kvm_abi import caps, ioctls
from kvm_abi.constants import KVM_API_VERSION, KVM_SYNC_X86_REGS
from vmm.errors import KvmCallFailed, KvmUnavailable
from vmm.kvm.calls import NULL, as_arg, ioctl, new, raw_ioctl
from vmm.kvm.vm import Vm

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

MAX_CPUID_ENTRIES = 256


class Kvm:
    """An open /dev/kvm. Creating one checks the API version; `create_vm` makes a `Vm`."""

    def __init__(self, path: str | None = None) -> None:
        # PYVMM_KVM_DEVICE points pyvmm at another device node (tests use it to simulate a host without KVM)
        if path is None:
            path = os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm")
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KvmUnavailable(f"{path} does not exist: this host has no KVM (load kvm_intel/kvm_amd)") from None
        except PermissionError:
            raise KvmUnavailable(f"no permission to open {path}: run as root or join the group that owns it") from None
        except OSError as e:
            raise KvmUnavailable(f"cannot open {path}: {e.strerror}") from None
        version = raw_ioctl(self.fd, ioctls.KVM_GET_API_VERSION)
        if version != KVM_API_VERSION:
            os.close(self.fd)
            raise KvmUnavailable(f"{path} speaks KVM API {version}, pyvmm needs {KVM_API_VERSION}")
        self.api_version = version
        self.vcpu_mmap_size = ioctl(self.fd, ioctls.KVM_GET_VCPU_MMAP_SIZE, NULL, "KVM_GET_VCPU_MMAP_SIZE")
        self._cpuid: Any = None
        self._msr_indices: list[int] | None = None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION on /dev/kvm: 0 when unsupported, else a cap-specific positive value."""
        return max(raw_ioctl(self.fd, ioctls.KVM_CHECK_EXTENSION, as_arg(cap)), 0)

    def capabilities(self, names: list[str] | None = None) -> dict[str, int]:
        """The capabilities pyvmm uses, by name, with what this host answers."""
        wanted = names if names is not None else list(USED_CAPS)
        return {n: self.check_extension(getattr(caps, f"KVM_CAP_{n}")) for n in wanted}

    def supported_cpuid(self) -> Any:
        """KVM_GET_SUPPORTED_CPUID, cached: a `struct kvm_cpuid2 *` with `nent` entries."""
        if self._cpuid is None:
            n = MAX_CPUID_ENTRIES
            while True:
                cpuid = new("struct kvm_cpuid2 *", {"nent": n, "entries": n})
                cpuid.nent = n
                rc = raw_ioctl(self.fd, ioctls.KVM_GET_SUPPORTED_CPUID, cpuid)
                if rc == -errno.E2BIG:
                    n *= 2
                    continue
                if rc < 0:
                    raise KvmCallFailed("KVM_GET_SUPPORTED_CPUID", -rc)
                break
            self._cpuid = cpuid
        return self._cpuid

    def msr_index_list(self) -> list[int]:
        """KVM_GET_MSR_INDEX_LIST, cached: every MSR KVM lists as saved and restored (the host's
        MSRs to save and the ones KVM emulates)."""
        if self._msr_indices is None:
            probe = new("struct kvm_msr_list *", {"nmsrs": 0, "indices": 0})
            rc = raw_ioctl(self.fd, ioctls.KVM_GET_MSR_INDEX_LIST, probe)
            if rc < 0 and rc != -errno.E2BIG:
                raise KvmCallFailed("KVM_GET_MSR_INDEX_LIST", -rc)
            n = int(probe.nmsrs)
            listing = new("struct kvm_msr_list *", {"nmsrs": n, "indices": n})
            listing.nmsrs = n
            ioctl(self.fd, ioctls.KVM_GET_MSR_INDEX_LIST, listing, "KVM_GET_MSR_INDEX_LIST")
            self._msr_indices = [int(listing.indices[i]) for i in range(int(listing.nmsrs))]
        return list(self._msr_indices)

    def create_vm(self) -> Vm:
        fd = ioctl(self.fd, ioctls.KVM_CREATE_VM, as_arg(0), "KVM_CREATE_VM")
        sync = self.check_extension(caps.KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS != 0
        return Vm(fd, vcpu_mmap_size=self.vcpu_mmap_size, sync_regs=sync)


# The capabilities pyvmm relies on or reports in `pyvmm info`.
USED_CAPS = (
    "USER_MEMORY",
    "SET_TSS_ADDR",
    "SET_IDENTITY_MAP_ADDR",
    "EXT_CPUID",
    "NR_MEMSLOTS",
    "NR_VCPUS",
    "MAX_VCPUS",
    "READONLY_MEM",
    "SYNC_REGS",
    "IMMEDIATE_EXIT",
    "SET_GUEST_DEBUG",
    "INTERNAL_ERROR_DATA",
    "COALESCED_MMIO",
    "COALESCED_PIO",
    "IOEVENTFD",
    "IRQCHIP",
    "PIT2",
    "VCPU_EVENTS",
    "X86_USER_SPACE_MSR",
    "EXIT_HYPERCALL",
)
