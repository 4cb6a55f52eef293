"""Loading a kernel image the way `qemu-system-x86_64 -kernel IMAGE -append ... -initrd ...` does.

`load_kernel` tells the format from the image's bytes (see `detect`), places it in guest RAM and
points the boot vCPU at it:

- multiboot: 32-bit protected mode, EAX = 0x2BADB002, EBX = the boot information structure;
- ELF64: long mode at the entry point; ELF32: protected mode at the entry point;
- anything else: a flat binary, placed as `--mode/--load/--entry` say (vmm.image.place_flat).

Everything is checked before the first byte is written, so a refused image leaves RAM untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vmm.cpu.modes import BootArea, CpuMode
from vmm.errors import ConfigError, ImageError
from vmm.loaders.detect import detect_format
from vmm.loaders.image import place_flat
from vmm.loaders.placement import Occupied, area_occupied, choose_boot_area
from vmm.record import TupleRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Protocol, TypeVar

    from vmm.board.memory import GuestMemory
    from vmm.loaders.detect import ImageFormat as ImageFormat  # re-exported
    from vmm.loaders.elf import Segment

# BootTarget and ImageFormat are public too, but exist for the type checker only (annotations)
__all__ = ["LoadedKernel", "detect_format", "load_kernel"]

if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time
    T = TypeVar("T")

    class BootTarget(Protocol):
        """What load_kernel needs of a Machine; unit tests pass a stand-in with real GuestMemory."""

        @property
        def memory(self) -> GuestMemory: ...

        @property
        def mem_size(self) -> int: ...

        def boot(
            self,
            mode: CpuMode,
            entry: int,
            *,
            stack: int | None = None,
            regs: dict[str, int] | None = None,
            area: BootArea | None = None,
        ) -> object: ...


class LoadedKernel(TupleRecord):
    format: ImageFormat
    entry: int
    mode: CpuMode
    info_address: int | None  # multiboot information structure (the kernel's EBX), else None
    notes: tuple[str, ...] = ()  # requests the kernel made that were not met


_ELF_MODES: dict[ImageFormat, CpuMode] = {
    "multiboot": CpuMode.PROTECTED,
    "elf64": CpuMode.LONG,
    "elf32": CpuMode.PROTECTED,
}


def load_kernel(
    machine: BootTarget,
    data: bytes,
    path: str,
    *,
    cmdline: str = "",
    modules: Sequence[tuple[str, str]] = (),
    mode: CpuMode | None = None,
    load: int | None = None,
    entry: int | None = None,
) -> LoadedKernel:
    """Place the kernel `data` (read from `path`) and its `modules` ((file, args) pairs) in
    `machine`'s RAM and set the boot vCPU up to enter it.

    `mode`, `load` and `entry` are for flat binaries; the other formats carry their own and
    refuse them unless they agree. `cmdline` and `modules` reach only a multiboot kernel: the
    other formats have no way to receive them, so asking for them is refused, not ignored."""
    fmt = _image_step(path, lambda: detect_format(data))
    if fmt == "flat":
        _refuse_boot_data(fmt, path, cmdline, modules)
        mode = CpuMode.LONG if mode is None else mode
        place = place_flat(len(data), mode, machine.mem_size, load, entry)
        machine.memory.write(place.load, data)
        machine.boot(mode, place.entry, stack=place.stack, area=place.area)
        return LoadedKernel(fmt, place.entry, mode, None)

    # The ELF and multiboot parsers are imported only for their images: a flat binary's start-up
    # (every `pyvmm run` of one) does not pay for building their tables.
    from vmm.loaders import multiboot as mb
    from vmm.loaders.elf import parse_elf, resolve_entry

    fixed_mode = _ELF_MODES[fmt]
    _refuse_flat_options(fmt, path, fixed_mode, mode, load, entry)
    if fmt != "multiboot":
        _refuse_boot_data(fmt, path, cmdline, modules)
        elf = _image_step(path, lambda: parse_elf(data, machine.mem_size))
        start = _image_step(path, lambda: resolve_entry(elf.entry, elf.segments))
        area = _image_step(path, lambda: choose_boot_area(fixed_mode, _occupied(elf.segments), machine.mem_size))
        _write_segments(machine.memory, elf.segments)
        machine.boot(fixed_mode, start, area=area)
        return LoadedKernel(fmt, start, fixed_mode, None)

    header = _image_step(path, lambda: mb.parse_header(data))
    assert header is not None  # detect_format found it
    kernel = _image_step(path, lambda: mb.kernel_image(data, header, machine.mem_size))
    segments = _occupied(kernel.segments)
    area = _image_step(path, lambda: choose_boot_area(fixed_mode, segments, machine.mem_size))
    taken = [*segments, area_occupied(area, fixed_mode)]
    placed = mb.place_modules(
        [mb.read_module(f, a) for f, a in modules], kernel.end, machine.mem_size, [(o.start, o.end) for o in taken]
    )
    occupied = taken + [Occupied(m.start, m.end, f"module {m.string!r}") for m in placed]
    info = _image_step(
        path,
        lambda: mb.build_info(
            machine.mem_size, mb.kernel_cmdline(path, cmdline), placed, occupied, amd_ht_hole=_amd_ht_hole(machine)
        ),
    )

    _write_segments(machine.memory, kernel.segments)
    for m in placed:
        machine.memory.write(m.start, m.data)
    for gpa, blob in info.writes:
        machine.memory.write(gpa, blob)
    machine.boot(fixed_mode, kernel.entry, regs={"rax": mb.BOOT_MAGIC, "rbx": info.address}, area=area)
    return LoadedKernel(fmt, kernel.entry, fixed_mode, info.address, tuple(header.notes()))


def _occupied(segments: Sequence[Segment]) -> list[Occupied]:
    return [Occupied(s.paddr, s.end, s.describe()) for s in segments]


def _image_step(path: str, step: Callable[[], T]) -> T:
    """Run a parsing step, naming the image in any refusal: the message alone would not say
    which file is at fault."""
    try:
        return step()
    except ImageError as e:
        raise ImageError(f"image {path!r}: {e}") from None


def _write_segments(memory: GuestMemory, segments: Sequence[Segment]) -> None:
    for s in segments:
        memory.write(s.paddr, s.data)
        if s.memsz > len(s.data):
            # RAM starts zeroed, but the loader must not rely on it: the BSS is part of the contract
            memory.fill(s.paddr + len(s.data), s.memsz - len(s.data), 0)


_FORMAT_NAMES: dict[ImageFormat, str] = {
    "multiboot": "a multiboot kernel",
    "elf64": "a 64-bit ELF image",
    "elf32": "a 32-bit ELF image",
    "flat": "a flat binary",
}


def _refuse_flat_options(
    fmt: ImageFormat, path: str, fixed: CpuMode, mode: CpuMode | None, load: int | None, entry: int | None
) -> None:
    what = f"{path!r} is {_FORMAT_NAMES[fmt]}"
    if mode is not None and mode is not fixed:
        raise ConfigError(f"--mode {mode.value} does not apply: {what}, which starts in {fixed.value} mode")
    if load is not None:
        raise ConfigError(f"--load applies only to flat binaries: {what}, which says where it loads")
    if entry is not None:
        raise ConfigError(f"--entry applies only to flat binaries: {what}, which names its own entry point")


def _refuse_boot_data(fmt: ImageFormat, path: str, cmdline: str, modules: Sequence[tuple[str, str]]) -> None:
    if cmdline or modules:
        given = "--append" if cmdline else "--initrd"
        raise ConfigError(
            f"{given} needs a multiboot kernel: {path!r} is {_FORMAT_NAMES[fmt]}, which has no way to receive it"
        )


def _amd_ht_hole(machine: object) -> bool:
    """Whether QEMU would list the AMD HyperTransport hole: an AMD CPU with 40+ physical address bits."""
    kvm = getattr(machine, "kvm", None)
    if kvm is None:
        return False
    cpuid = kvm.supported_cpuid()
    leaves = {int(cpuid.entries[i].function): cpuid.entries[i] for i in range(int(cpuid.nent))}
    vendor = leaves.get(0)
    sizes = leaves.get(0x80000008)
    is_amd = vendor is not None and int(vendor.ebx) == 0x68747541  # "Auth" of AuthenticAMD
    return is_amd and sizes is not None and int(sizes.eax) & 0xFF >= 40
