"""Reading a guest image from disk and placing a flat binary in guest RAM."""

from __future__ import annotations

from vmm import layout as L
from vmm.cpu.modes import BootArea, CpuMode
from vmm.errors import ImageError
from vmm.inputs import InputFileError, read_regular
from vmm.loaders.placement import Occupied, choose_boot_area
from vmm.record import TupleRecord

MODULE_LIMIT = 1 << 32  # a multiboot module lies below 4 GiB, so no larger one can be placed


def read_guest_file(path: str, what: str, limit: int = MODULE_LIMIT) -> bytes:
    """The bytes of an image or module file of at most `limit` bytes; any failure (a missing
    file, a directory, a FIFO, a device, one too large) is an ImageError naming `what` and path,
    found from stat() before anything is read."""
    try:
        return read_regular(path, limit)
    except InputFileError as e:
        raise ImageError(f"{what} {path!r} {e}") from None


def read_image(path: str, limit: int = MODULE_LIMIT) -> bytes:
    """An image that can fit in `limit` bytes (the guest's RAM): a larger one is refused from its size."""
    data = read_guest_file(path, "image", limit)
    if not data:
        raise ImageError(f"image {path!r} is empty")
    return data


class FlatPlacement(TupleRecord):
    load: int
    entry: int
    stack: int
    area: BootArea  # where the boot GDT, TSS and page tables go: clear of the image


def place_flat(size: int, mode: CpuMode, mem_size: int, load: int | None, entry: int | None) -> FlatPlacement:
    """Where a flat image of `size` bytes goes, and the boot structures beside it; refuses an image
    that leaves RAM or leaves no room for them."""
    default_load = L.REAL_MODE_LOAD if mode is CpuMode.REAL else L.DEFAULT_LOAD
    load = default_load if load is None else load
    entry = load if entry is None else entry
    end = load + size
    if end > mem_size:
        raise ImageError(
            f"image of {size} bytes at {load:#x} ends at {end:#x}, beyond guest RAM ({mem_size:#x} bytes); "
            "use a larger --mem or a lower --load"
        )
    if mode is CpuMode.REAL:
        if end > 0x100000:
            raise ImageError(f"real-mode image at {load:#x}+{size:#x} extends past 1 MiB")
        if entry > 0xFFFF and entry >> 4 > 0xFFFF:
            raise ImageError(f"real-mode entry {entry:#x} is not reachable with a 16-bit segment")
    if not load <= entry < end:
        raise ImageError(f"entry point {entry:#x} is outside the image ({load:#x}-{end:#x})")
    stack = load if mode is not CpuMode.REAL else min(load, 0xFFFF)
    area = choose_boot_area(mode, [Occupied(load, end, f"the image ({load:#x}-{end:#x})")], mem_size)
    return FlatPlacement(load, entry, stack, area)
