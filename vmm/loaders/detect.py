"""Telling kernel image formats apart by their content, as `qemu-system-x86_64 -kernel` does."""

from __future__ import annotations

from vmm.errors import ImageError
from vmm.loaders.magic import ELF_MAGIC, ELFCLASS32, ELFCLASS64

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Literal

    ImageFormat = Literal["multiboot", "elf64", "elf32", "flat"]

LINUX_HDRS_OFFSET, LINUX_HDRS = 0x202, b"HdrS"
# A multiboot header lies in the first 8 KiB and starts with this magic: where the bytes do not
# occur there, the multiboot parser (and its import) is not needed to say so.
MULTIBOOT_MAGIC, MULTIBOOT_SEARCH = (0x1BADB002).to_bytes(4, "little"), 8192


def detect_format(data: bytes) -> ImageFormat:
    """Multiboot when a valid multiboot header lies in the first 8 KiB: it wins over ELF, since
    a multiboot kernel is usually an ELF file too and must be started the multiboot way (QEMU
    checks for it first as well). Otherwise ELF by its magic and class, otherwise a flat binary.

    An ELF file of an unknown class, and a Linux bzImage (which QEMU recognises before anything
    else, by "HdrS" at 0x202), are refused rather than run as flat bytes, which would only fail
    later and less clearly."""
    if data[LINUX_HDRS_OFFSET : LINUX_HDRS_OFFSET + 4] == LINUX_HDRS:
        raise ImageError("this is a Linux kernel (boot protocol header 'HdrS'); pyvmm does not implement that protocol")
    if MULTIBOOT_MAGIC in data[:MULTIBOOT_SEARCH]:
        from vmm.loaders.multiboot import find_header

        if find_header(data) is not None:
            return "multiboot"
    if data[:4] == ELF_MAGIC:
        elf_class = data[4] if len(data) > 4 else 0
        if elf_class == ELFCLASS64:
            return "elf64"
        if elf_class == ELFCLASS32:
            return "elf32"
        raise ImageError(f"ELF class {elf_class} is neither 32-bit (1) nor 64-bit (2)")
    return "flat"
