"""ABI profiles of the unmerged Intel EPT Sub-Page Protection (SPP) patches.

Each revision of the patch series changed struct layouts, exit and capability
numbers, and every one of those numbers is also a *mainline* number with a
different meaning (exit 28 is KVM_EXIT_ARM_NISV, 29 is KVM_EXIT_X86_RDMSR,
capability 182 is KVM_CAP_HALT_POLL...).  Sending them to, or trusting them
from, a stock kernel would silently do something else.  So they live here,
in their own cffi instance, and nothing in ``kvm_abi``'s mainline declarations
refers to them; code opts into one profile by name.  That instance,
``spp_ffi``, is loaded on first use: importing this module builds no ffi.

Facts and their sources: shared/reference/spp.md and the RFC v1 patch in
shared/seed.  Items that no primary source confirmed are listed in each
profile's ``unconfirmed`` field rather than presented as facts.
"""

import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from kvm_abi import caps, exits
from kvm_abi.ioctls import _IOR, _IOW, KVMIO

# The sub-page geometry and mask formats live in kvm_abi.subpage, which costs nothing to import;
# they are re-exported here because every profile is stated in their terms.
from kvm_abi.subpage import (
    FULL_ACCESS,
    FULL_VECTOR,
    PAGE_SIZE,
    SUBPAGE_SIZE,
    SUBPAGES_PER_PAGE,
    mask_to_vector,
    vector_to_mask,
)

if TYPE_CHECKING:
    from _cffi_backend import FFI

    # The patched layouts (kvm_abi._spp_cdef), in an ffi of their own that includes the
    # mainline one. Only the kernel backend and the tests use it, so it is loaded on first
    # access, through __getattr__ below.
    spp_ffi: FFI

__all__ = [
    "EPT_SPP_BIT",
    "FULL_ACCESS",
    "FULL_VECTOR",
    "KVM_INIT_SPP",
    "KVM_SUBPAGES_GET_ACCESS",
    "KVM_SUBPAGES_SET_ACCESS",
    "PAGE_SIZE",
    "PROFILES",
    "RUN_SPP_ADDR_OFFSET",
    "RUN_SPP_INSN_LEN_OFFSET",
    "SECONDARY_EXEC_ENABLE_SPP",
    "SUBPAGES_PER_PAGE",
    "SUBPAGE_SIZE",
    "VMCS_SPPT_POINTER",
    "VMX_EXIT_REASON_SPP",
    "AddrUnit",
    "Enable",
    "SppProfile",
    "mainline_cap_name",
    "mainline_exit_name",
    "mask_to_vector",
    "profile",
    "spp_ffi",
    "vector_to_mask",
]

# Hardware facts, identical in every revision.
VMX_EXIT_REASON_SPP: Final = 66
SECONDARY_EXEC_ENABLE_SPP: Final = 0x00800000
VMCS_SPPT_POINTER: Final = 0x2030
EPT_SPP_BIT: Final = 61

# The offsets every revision shares: the exit union of struct kvm_run starts
# at byte 32, and the SPP exit puts addr first and the length byte after it.
RUN_SPP_ADDR_OFFSET: Final = 32
RUN_SPP_INSN_LEN_OFFSET: Final = 40

# Every revision encodes __u64 as the ioctl size while the kernel copies the
# whole kvm_subpage buffer: pass a pointer to a buffer of the profile's size,
# not to a __u64.
KVM_SUBPAGES_GET_ACCESS: Final = _IOR(KVMIO, 0x49, "__u64")
KVM_SUBPAGES_SET_ACCESS: Final = _IOW(KVMIO, 0x4A, "__u64")
KVM_INIT_SPP: Final = _IOW(KVMIO, 0x4B, "__u64")


class Enable(enum.Enum):
    """How a revision turns SPP on."""

    MODULE_PARAM = "kvm_intel module parameter spp=1"
    INIT_SPP_IOCTL = "KVM_INIT_SPP vm ioctl"
    ENABLE_CAP = "KVM_ENABLE_CAP(KVM_CAP_X86_SPP) on the vm fd"


class AddrUnit(enum.Enum):
    """What kvm_run.spp.addr holds."""

    GPA = "guest-physical byte address"
    GFN = "guest page frame number"


@dataclass(frozen=True)
class SppProfile:
    """The userspace-visible ABI of one SPP patch generation.

    Struct names refer to ``spp_ffi``.  ``subpage_sizeof`` is the C sizeof of
    the subpage struct; with ``subpage_flexible`` the buffer also needs four
    bytes per page (see ``subpage_buffer_size``).  ``ept_addr`` is what
    ``addr`` holds for a write caught by the EPT walk, ``emulator_addr`` for
    one caught in KVM's instruction emulator (None: that path is unchecked).
    ``set_applies_first_mask_to_all`` records the early quirk where SET uses
    access_map[0] for every page of the range.
    """

    name: str
    revisions: str
    exit_reason: int
    exit_reason_collides_with: str
    kernel_skips_instruction: bool
    exit_struct: str
    insn_len_field: str | None
    subpage_struct: str
    subpage_fields: tuple[str, ...]
    subpage_header_size: int
    subpage_sizeof: int
    subpage_flexible: bool
    max_pages: int
    ioctl_get_access: int
    ioctl_set_access: int
    ioctl_init_spp: int | None
    cap: int | None
    cap_collides_with: str | None
    enable: Enable
    ept_addr: AddrUnit
    emulator_addr: AddrUnit | None
    set_applies_first_mask_to_all: bool = False
    notes: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...] = ()
    addr_offset: int = RUN_SPP_ADDR_OFFSET
    insn_len_offset: int | None = None

    @property
    def exit_has_insn_len(self) -> bool:
        return self.insn_len_field is not None

    def subpage_buffer_size(self, npages: int) -> int:
        """Bytes to allocate for a GET/SET_ACCESS call covering npages."""
        if not 1 <= npages <= self.max_pages:
            raise ValueError(f"{self.name}: npages must be 1..{self.max_pages}")
        if self.subpage_flexible:
            return self.subpage_header_size + 4 * npages
        return self.subpage_sizeof


_RFC_V2: Final = SppProfile(
    name="rfc-v2",
    revisions="RFC v2 (Zhang Yi, 30 Nov 2018, 4.20-rc1)",
    exit_reason=28,
    exit_reason_collides_with="KVM_EXIT_ARM_NISV",
    kernel_skips_instruction=True,
    exit_struct="struct spp_exit_rfc",
    insn_len_field=None,
    subpage_struct="struct spp_rfc_kvm_subpage",
    subpage_fields=("base_gfn", "npages", "access_map"),
    subpage_header_size=16,
    subpage_sizeof=528,
    subpage_flexible=False,
    max_pages=128,
    ioctl_get_access=KVM_SUBPAGES_GET_ACCESS,
    ioctl_set_access=KVM_SUBPAGES_SET_ACCESS,
    ioctl_init_spp=None,
    cap=None,
    cap_collides_with=None,
    enable=Enable.MODULE_PARAM,
    ept_addr=AddrUnit.GPA,
    emulator_addr=None,
    set_applies_first_mask_to_all=True,
    notes=(
        "1 <= npages <= 128, else -EINVAL",
        "pages must be mapped as 4 KiB EPT leaves, else -EFAULT",
        "GET returns npages; untouched pages read back as 0",
    ),
)

_RFC_V1: Final = replace(
    _RFC_V2,
    name="rfc-v1",
    revisions="RFC v1 (Zhang Yi, 13 Oct 2017, ~4.14): the patch in shared/seed",
    notes=(),
    unconfirmed=(
        "access_map length (SUBPAGE_MAX_BITMAP): assumed 128 as in RFC v2",
        "ioctl numbers: assumed equal to RFC v2",
        "enabling through the kvm_intel spp module parameter",
        "SET applying access_map[0] to every page, as RFC v2 does",
    ),
)

_V3_V7: Final = replace(
    _RFC_V2,
    name="v3-v7",
    revisions="v3 (6 Jun 2019) to v7 (19 Nov 2019), Yang Weijiang",
    subpage_struct="struct spp_v3_kvm_subpage",
    subpage_sizeof=272,
    max_pages=64,
    ioctl_init_spp=KVM_INIT_SPP,
    enable=Enable.INIT_SPP_IOCTL,
    emulator_addr=AddrUnit.GFN,
    set_applies_first_mask_to_all=False,
    notes=(
        "GET/SET return -ENODEV until KVM_INIT_SPP (which takes no argument)",
        "the emulator path (addr = gfn) exists only from v6 on",
        "from v5, huge pages covering a protected gfn are split, not refused",
    ),
    unconfirmed=(
        "max npages per call: assumed equal to the access_map length",
        "whether SET still applies access_map[0] to every page",
    ),
)

_V12: Final = SppProfile(
    name="v12",
    revisions="v12 (16 May 2020), the last posting",
    exit_reason=29,
    exit_reason_collides_with="KVM_EXIT_X86_RDMSR",
    kernel_skips_instruction=False,
    exit_struct="struct spp_exit_v12",
    insn_len_field="insn_len",
    subpage_struct="struct spp_v12_kvm_subpage",
    subpage_fields=("gfn_base", "npages", "flags", "access_map"),
    subpage_header_size=16,
    subpage_sizeof=16,
    subpage_flexible=True,
    max_pages=512,
    ioctl_get_access=KVM_SUBPAGES_GET_ACCESS,
    ioctl_set_access=KVM_SUBPAGES_SET_ACCESS,
    ioctl_init_spp=None,
    cap=182,
    cap_collides_with="KVM_CAP_HALT_POLL",
    enable=Enable.ENABLE_CAP,
    ept_addr=AddrUnit.GPA,
    emulator_addr=AddrUnit.GFN,
    insn_len_offset=RUN_SPP_INSN_LEN_OFFSET,
    notes=(
        "KVM_CHECK_EXTENSION returns 512 whether or not the CPU has SPP",
        "RIP stays on the write; userspace adds insn_len to discard it",
        "create vCPUs before KVM_ENABLE_CAP: init takes the SPPT root from them",
        "memslots added after enabling have no bitmap: their gfns give -EFAULT",
        "the emulator-path check is page-granular; insn_len is meaningless there",
        "flags must be 0; GET and SET return npages",
    ),
)

_V10_V11: Final = replace(
    _V12,
    name="v10-v11",
    revisions="v10 (31 Dec 2019, resent 2 Jan 2020) and v11 (19 Jan 2020)",
    cap=179,
    cap_collides_with="KVM_CAP_S390_VCPU_RESETS",
    notes=(*_V12.notes[:5], "v10 spells the length field ins_len; same offset"),
    unconfirmed=("v10 capability number (v11's 179 assumed)",),
)

_V9: Final = replace(
    _V12,
    name="v9",
    revisions="v9 (6 Dec 2019)",
    exit_reason=28,
    exit_reason_collides_with="KVM_EXIT_ARM_NISV",
    exit_struct="struct spp_exit_v9",
    insn_len_field="ins_len",
    cap=176,
    cap_collides_with="KVM_CAP_PPC_GUEST_DEBUG_SSTEP",
    notes=(*_V12.notes[:5], "GET reads npages after freeing its buffer (a v9 bug, fixed by v12)"),
)

_PROFILES: Final = (_RFC_V1, _RFC_V2, _V3_V7, _V9, _V10_V11, _V12)

PROFILES: Final[dict[str, SppProfile]] = {p.name: p for p in _PROFILES}


def profile(name: str) -> SppProfile:
    """The profile called ``name`` (one of ``PROFILES``); KeyError lists them."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise KeyError(f"unknown SPP profile {name!r}; known: {known}") from None


def mainline_exit_name(p: SppProfile) -> str:
    """The mainline meaning of the profile's exit number, from exits.py."""
    return "KVM_EXIT_" + exits.EXIT_REASON_NAMES[p.exit_reason]


def mainline_cap_name(p: SppProfile) -> str | None:
    """The mainline meaning of the profile's capability number, if any."""
    if p.cap is None:
        return None
    return "KVM_CAP_" + caps.CAP_NAMES[p.cap]


if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        if name == "spp_ffi":
            from kvm_abi._spp_ffi import spp_ffi

            return spp_ffi
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
