"""Sub-page geometry and the two write-mask formats of sub-page write protection.

These are facts of the hardware feature (Intel EPT Sub-Page Protection), the same in every
revision of the unmerged SPP patches and in pyvmm's software engine. They live apart from
``kvm_abi.spp`` and import nothing, so code that only needs the geometry (masks, event
decoding) does not load the patch profiles or their cffi declarations.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Final

# One 4 KiB page holds 32 sub-pages of 128 bytes; bit i of a 32-bit mask
# allows guest writes to bytes [128*i, 128*i + 127].
SUBPAGE_SIZE: Final = 128
SUBPAGES_PER_PAGE: Final = 32
PAGE_SIZE: Final = SUBPAGE_SIZE * SUBPAGES_PER_PAGE
FULL_ACCESS: Final = 0xFFFFFFFF
# The hardware SPP vector (SPPT L1 entry) grants sub-page i with bit 2*i; the
# odd bits are reserved.  This is FULL_ACCESS in that format.
FULL_VECTOR: Final = 0x5555555555555555


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
