"""The multiboot kernels in guests/mb/ carry the header their loader path needs: the ELF kernels
none of the address fields (so the ELF program headers are what loads), the flat one the fields
that describe the file exactly. The QEMU comparisons in tests/kvm rely on both."""

from __future__ import annotations

import struct

import pytest
from conftest import GUESTS

MB = GUESTS / "mb"
MB_HEADER_MAGIC = 0x1BADB002
MB_HEADER_ADDRESSES = 1 << 16
MB_HEADER_SEARCH = 8192  # the header must lie in the first 8 KiB of the file


def multiboot_header(data: bytes) -> tuple[int, tuple[int, ...]] | None:
    """(offset, header words) of the first valid multiboot header in the first 8 KiB."""
    for off in range(0, min(len(data), MB_HEADER_SEARCH) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<3I", data, off)
        if magic == MB_HEADER_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            n = 8 if flags & MB_HEADER_ADDRESSES else 3
            return off, struct.unpack_from(f"<{n}I", data, off)
    return None


@pytest.mark.parametrize(
    "kernel",
    [f"{k}.elf" for k in ("mb-info", "mb-modules", "mb-fwcfg", "mb-rtc", "mb-exitcodes", "mb-smp", "mb-timer")],
)
def test_elf_multiboot_kernels_have_a_header_and_no_address_fields(kernel: str) -> None:
    data = (MB / kernel).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 1  # ELF32
    found = multiboot_header(data)
    assert found is not None
    _, words = found
    assert words[1] & MB_HEADER_ADDRESSES == 0  # the loader must take the ELF program headers


def test_flat_multiboot_kernel_header_describes_the_file() -> None:
    data = (MB / "mb-info-flat.bin").read_bytes()
    found = multiboot_header(data)
    assert found is not None
    off, (_, flags, _, header_addr, load_addr, load_end, bss_end, entry) = found
    assert flags & MB_HEADER_ADDRESSES
    assert load_addr == 0x200000
    assert header_addr - load_addr == off  # the file's first byte loads at load_addr
    assert load_end - load_addr == len(data)  # the whole file, nothing more
    assert bss_end > load_end
    assert load_addr < entry < load_end
