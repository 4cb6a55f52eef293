"""Where the monitor puts what it writes for a kernel (boot GDT, TSS and page tables, the multiboot
information, modules): in the gaps the image leaves in low memory, wherever the image is linked.

The rules, the same for every image so the result is deterministic:
- never page 0 (kernels put an AP trampoline or their own data there), never over an image's
  segment or anything placed before;
- the first gap that fits, in address order, starting from the lowest page-aligned address of the
  window; candidates are the window's start and the page above the end of each occupied range;
- the window is low memory below the initial kernel stack (`LOW_WINDOW`), which any kernel can
  reach before it sets up paging.
An image that leaves no room is refused with one line naming what covers the window.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmm import layout as L
from vmm.cpu.modes import BootArea, CpuMode
from vmm.errors import ImageError
from vmm.record import TupleRecord

STACK_ROOM = 0x4000  # below the initial kernel stack: room for it to grow before the kernel moves it
LOW_WINDOW = (L.PAGE_SIZE, L.KERNEL_STACK - STACK_ROOM)  # [start, end): page 1 up to the stack's room


class Occupied(TupleRecord):
    start: int
    end: int
    what: str  # how a refusal names it: "segment 0 (0x8000-0xa86c)"


def page_up(addr: int) -> int:
    return (addr + L.PAGE_SIZE - 1) & ~(L.PAGE_SIZE - 1)


def find_gap(size: int, occupied: Sequence[Occupied], window: tuple[int, int] = LOW_WINDOW) -> int | None:
    """The lowest page-aligned address in `window` where `size` bytes touch nothing in `occupied`."""
    lo, hi = window
    candidates = sorted({page_up(lo), *(page_up(o.end) for o in occupied if page_up(o.end) > lo)})
    for base in candidates:
        if base + size > hi:
            break
        if not any(base < o.end and o.start < base + size for o in occupied):
            return base
    return None


def describe_window(occupied: Sequence[Occupied], window: tuple[int, int]) -> str:
    inside = [o.what for o in sorted(occupied) if o.start < window[1] and window[0] < o.end]
    return ", ".join(inside) if inside else "nothing (the window is too small)"


def choose_boot_area(mode: CpuMode, occupied: Sequence[Occupied], mem_size: int) -> BootArea:
    """Where the boot GDT, TSS and (in long mode) page tables go for an image occupying `occupied`."""
    size = BootArea.size(mode)
    if size == 0:
        return BootArea()
    window = (LOW_WINDOW[0], min(LOW_WINDOW[1], mem_size))
    base = find_gap(size, occupied, window)
    if base is None:
        raise ImageError(
            f"no room for the monitor's boot structures ({size:#x} bytes for {mode.value} mode) in low memory "
            f"{window[0]:#x}-{window[1]:#x}: it is covered by {describe_window(occupied, window)}"
        )
    return BootArea(base)


def area_occupied(area: BootArea, mode: CpuMode) -> Occupied:
    return Occupied(area.base, area.base + BootArea.size(mode), "the monitor's boot structures")
