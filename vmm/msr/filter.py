"""The MSR filter KVM is given: which indices leave the kernel, for reads and for writes.

A pure function of the requested rules, so it is tested without KVM. KVM's filter (default allow)
lets an MSR through unless a range whose flags cover the access has the MSR's bit clear; a
filtered access then exits to user space (KVM_CAP_X86_USER_SPACE_MSR with the FILTER reason).
Each range carries one bitmap of at most KVM_MSR_FILTER_MAX_BITMAP_SIZE bytes, and KVM takes at
most 16 ranges: requested indices close together share a range (their neighbours' bits are set,
so they stay in the kernel); reads and writes get ranges of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kvm_abi import constants
from vmm.errors import ConfigError

MAX_SPAN = constants.KVM_MSR_FILTER_MAX_BITMAP_SIZE * 8  # MSRs one range can cover
READ = constants.KVM_MSR_FILTER_READ
WRITE = constants.KVM_MSR_FILTER_WRITE
MSR_INDEX_LIMIT = 1 << 32


@dataclass(frozen=True)
class FilterRange:
    flags: int  # READ, WRITE or both
    base: int
    nmsrs: int
    bitmap: bytes  # bit i clear: MSR base + i exits to user space

    def as_tuple(self) -> tuple[int, int, int, bytes]:
        return (self.flags, self.base, self.nmsrs, self.bitmap)

    def filtered(self, index: int) -> bool:
        i = index - self.base
        return 0 <= i < self.nmsrs and not self.bitmap[i // 8] >> (i % 8) & 1


def _clusters(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted indices grouped into [first, last] spans of at most MAX_SPAN MSRs each."""
    spans: list[tuple[int, int]] = []
    for idx in indices:
        if spans and idx - spans[-1][0] < MAX_SPAN:
            spans[-1] = (spans[-1][0], idx)
        else:
            spans.append((idx, idx))
    return spans


def _range(flags: int, first: int, last: int, members: set[int]) -> FilterRange:
    n = last - first + 1
    bits = bytearray(b"\xff" * ((n + 7) // 8))
    for idx in members:
        if first <= idx <= last:
            i = idx - first
            bits[i // 8] &= ~(1 << (i % 8)) & 0xFF
    return FilterRange(flags, first, n, bytes(bits))


def build_filter(reads: Iterable[int], writes: Iterable[int]) -> list[FilterRange]:
    """The ranges that filter exactly `reads` for RDMSR and `writes` for WRMSR."""
    read_set, write_set = set(reads), set(writes)
    for idx in read_set | write_set:
        if not 0 <= idx < MSR_INDEX_LIMIT:
            raise ConfigError(f"MSR index {idx:#x} is not a 32-bit number")
    out: list[FilterRange] = []
    # one family of ranges per access kind: KVM decides by the first range whose flags cover the
    # access, so ranges that covered both kinds could let through what a later range filters
    for flags, members in ((READ, read_set), (WRITE, write_set)):
        for first, last in _clusters(sorted(members)):
            out.append(_range(flags, first, last, members))
    if len(out) > constants.KVM_MSR_FILTER_MAX_RANGES:
        raise ConfigError(
            f"the MSRs asked for need {len(out)} filter ranges; KVM takes {constants.KVM_MSR_FILTER_MAX_RANGES} "
            f"(indices within {MAX_SPAN} of each other share one)"
        )
    return out
