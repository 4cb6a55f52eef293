"""Image format detection: a multiboot header in the first 8 KiB wins, then ELF by class, then
flat; and the exact limits of the multiboot header search."""

from __future__ import annotations

import pytest

from tests.unit.test_loader_images import Seg, at_offset, elf, mb_header
from vmm.errors import ImageError
from vmm.loaders import detect_format
from vmm.loaders.multiboot import find_header, parse_header


def test_flat_binary() -> None:
    assert detect_format(b"\xf4" * 100) == "flat"
    assert detect_format(b"\x7fEL") == "flat"  # too short to be anything else


@pytest.mark.parametrize(("bits", "fmt"), [(32, "elf32"), (64, "elf64")])
def test_elf_by_class(bits: int, fmt: str) -> None:
    assert detect_format(elf(bits, [Seg(0x100000, b"\xf4")])) == fmt


def test_elf_of_unknown_class_is_refused() -> None:
    data = bytearray(elf(64, [Seg(0x100000, b"\xf4")]))
    data[4] = 3
    with pytest.raises(ImageError, match=r"^ELF class 3 is neither 32-bit \(1\) nor 64-bit \(2\)$"):
        detect_format(bytes(data))


def test_linux_bzimage_is_refused_by_name() -> None:
    data = at_offset(0x202, b"HdrS", 0x1000)
    with pytest.raises(ImageError, match=r"Linux kernel .*HdrS"):
        detect_format(data)


@pytest.mark.parametrize("bits", [32, 64])
def test_multiboot_header_wins_over_elf(bits: int) -> None:
    data = elf(bits, [Seg(0x100000, mb_header() + b"\xf4")])
    assert detect_format(data) == "multiboot"


def test_multiboot_a_out_flat_file() -> None:
    assert detect_format(mb_header(0x10000, (0x100000, 0x100000, 0, 0, 0x100020)) + bytes(32)) == "multiboot"


def test_multiboot_with_unknown_required_flags_is_still_detected() -> None:
    # detection says what it is; refusing the flags is the loader's job, with its own message
    data = mb_header(0x8)
    assert detect_format(data) == "multiboot"
    with pytest.raises(ImageError, match="flag bits 0x8"):
        parse_header(data)


# --- where the header may be ------------------------------------------------------------------
def test_header_at_the_start() -> None:
    assert find_header(mb_header() + bytes(100)) == 0


def test_header_ending_exactly_at_8192_is_found() -> None:
    # the magic, flags and checksum must lie wholly within the first 8192 bytes: 8180 + 12 = 8192
    assert find_header(at_offset(8180, mb_header(), 16384)) == 8180
    assert detect_format(at_offset(8180, mb_header(), 16384)) == "multiboot"


@pytest.mark.parametrize("offset", [8184, 8188, 8192, 8196, 12288])
def test_header_reaching_past_8192_is_not_found(offset: int) -> None:
    data = at_offset(offset, mb_header(), 16384)
    assert find_header(data) is None
    assert detect_format(data) == "flat"


@pytest.mark.parametrize("offset", [1, 2, 3, 6, 4098])
def test_misaligned_header_is_not_found(offset: int) -> None:
    data = at_offset(offset, mb_header(), 8192)
    assert find_header(data) is None
    assert detect_format(data) == "flat"


def test_bad_checksum_is_not_found() -> None:
    good = mb_header(0x3)
    bad = mb_header(0x3, checksum=(int.from_bytes(good[8:12], "little") + 1) & 0xFFFFFFFF)
    assert find_header(bad + bytes(64)) is None
    assert detect_format(bad + bytes(64)) == "flat"


def test_bad_checksum_does_not_hide_a_later_good_header() -> None:
    bad = mb_header(0x3, checksum=0)
    data = bad + bytes(4) + mb_header(0x3)
    assert find_header(data) == 16


def test_header_cut_short_by_the_end_of_the_file_is_not_found() -> None:
    assert find_header(mb_header()[:8]) is None
    assert find_header(b"") is None


def test_misaligned_magic_before_an_aligned_header() -> None:
    # a stray copy of the magic at an odd offset must not stop the search
    data = b"\x00" + mb_header() + bytes(3) + mb_header(0x2)
    assert find_header(data) == 16
