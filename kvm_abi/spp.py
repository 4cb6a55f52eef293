"""ABI profiles of the unmerged Intel EPT Sub-Page Protection (SPP) patches.

Each revision of the patch series changed struct layouts, exit and capability
numbers, and every one of those numbers is also a *mainline* number with a
different meaning (exit 28 is KVM_EXIT_ARM_NISV, 29 is KVM_EXIT_X86_RDMSR,
capability 182 is KVM_CAP_HALT_POLL...).  Sending them to, or trusting them
from, a stock kernel would silently do something else.  So they live here,
in their own cffi instance, and nothing in ``kvm_abi``'s mainline declarations
refers to them; code opts into one profile by name.

Facts and their sources: shared/reference/spp.md and the RFC v1 patch in
shared/seed.  Items that no primary source confirmed are listed in each
profile's ``unconfirmed`` field rather than presented as facts.
"""

import enum
from dataclasses import dataclass, replace
from typing import Final

import cffi

from kvm_abi import caps, exits
from kvm_abi._ffi import ffi as mainline_ffi
from kvm_abi.ioctls import _IOR, _IOW, KVMIO

# One 4 KiB page holds 32 sub-pages of 128 bytes; bit i of a 32-bit mask
# allows guest writes to bytes [128*i, 128*i + 127].
SUBPAGE_SIZE: Final = 128
SUBPAGES_PER_PAGE: Final = 32
PAGE_SIZE: Final = SUBPAGE_SIZE * SUBPAGES_PER_PAGE
FULL_ACCESS: Final = 0xFFFFFFFF
# The hardware SPP vector (SPPT L1 entry) grants sub-page i with bit 2*i; the
# odd bits are reserved.  This is FULL_ACCESS in that format.
FULL_VECTOR: Final = 0x5555555555555555

# Hardware facts, identical in every revision.
VMX_EXIT_REASON_SPP: Final = 66
SECONDARY_EXEC_ENABLE_SPP: Final = 0x00800000
VMCS_SPPT_POINTER: Final = 0x2030
EPT_SPP_BIT: Final = 61

# The offsets every revision shares: the exit union of struct kvm_run starts
# at byte 32, and the SPP exit puts addr first and the length byte after it.
RUN_SPP_ADDR_OFFSET: Final = 32
RUN_SPP_INSN_LEN_OFFSET: Final = 40

# Patched layouts under names of their own, so they cannot be mistaken for
# (or collide with) the mainline declarations they would replace.
spp_ffi: Final[cffi.FFI] = cffi.FFI()
spp_ffi.include(mainline_ffi)
spp_ffi.cdef(
    """
    /* RFC v1 (access_map size assumed) and RFC v2: SUBPAGE_MAX_BITMAP 128 */
    struct spp_rfc_kvm_subpage {
        __u64 base_gfn;
        __u64 npages;
        __u32 access_map[128];
    };
    /* v3 .. v7: SUBPAGE_MAX_BITMAP 64 */
    struct spp_v3_kvm_subpage {
        __u64 base_gfn;
        __u64 npages;
        __u32 access_map[64];
    };
    /* v8 .. v12: fixed header, then one __u32 per page */
    struct spp_v12_kvm_subpage_hdr {
        __u64 gfn_base;
        __u32 npages;
        __u32 flags;
    };
    struct spp_v12_kvm_subpage {
        __u64 gfn_base;
        __u32 npages;
        __u32 flags;
        __u32 access_map[];
    };
    /* The kvm_run exit member, to be cast at run + 32. */
    struct spp_exit_rfc {
        __u64 addr;
    };
    struct spp_exit_v9 {
        __u64 addr;
        __u8  ins_len;
    };
    struct spp_exit_v12 {
        __u64 addr;
        __u8  insn_len;
    };
    """
)

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


def mask_to_vector(mask: int) -> int:
    """32-bit write mask -> 64-bit hardware SPP vector (bit i -> bit 2i)."""
    if not 0 <= mask <= FULL_ACCESS:
        raise ValueError(f"mask 0x{mask:x} is not a 32-bit value")
    vector = 0
    for i in range(SUBPAGES_PER_PAGE):
        if mask >> i & 1:
            vector |= 1 << (2 * i)
    return vector


def vector_to_mask(vector: int) -> int:
    """64-bit hardware SPP vector -> 32-bit write mask (bit 2i -> bit i).

    A set odd bit is reserved in the hardware format, i.e. a misconfigured
    SPPT entry, so it is rejected rather than dropped.
    """
    if not 0 <= vector < 1 << 64:
        raise ValueError(f"vector 0x{vector:x} is not a 64-bit value")
    if vector & ~FULL_VECTOR:
        raise ValueError(
            f"vector 0x{vector:016x} sets reserved odd bits 0x{vector & ~FULL_VECTOR & 0xFFFFFFFFFFFFFFFF:016x}"
        )
    mask = 0
    for i in range(SUBPAGES_PER_PAGE):
        if vector >> (2 * i) & 1:
            mask |= 1 << i
    return mask
