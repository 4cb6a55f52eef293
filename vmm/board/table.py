"""The board table: which built-in devices a machine has and where they sit. Every built-in device
is chosen here (the PC platform's list and its firmware tables are in `vmm.board.pc`, loaded only
for a machine that has that platform) and placed by `place`.

Two platforms:
- "minimal": what every guest gets: COM1, the 0xe9 debug console, the ucall port and (unless
  removed) isa-debug-exit at 0xf4. Enough for flat binaries.
- "pc": the above plus what `qemu-system-x86_64 -no-reboot` offers a kernel that boots without a
  BIOS's help: fw_cfg, the CMOS clock with the memory-size bytes filled in, the i8042 and port
  0x92 reset paths, the POST/delay ports, and ACPI (RSDP, RSDT, MADT) and MP tables in the BIOS
  area. The interrupt controllers and the PIT are KVM's in-kernel ones (see `Board`).
`testdev` adds QEMU's pc-testdev to either.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmm import layout as L
from vmm.board.bus import AddressSpace
from vmm.board.memory import GuestMemory
from vmm.board.options import DeviceOptions, Peripherals
from vmm.devices.debugcon import DebugConsole
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.devices.uart import Uart16550
from vmm.devices.ucall import UcallPort
from vmm.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from vmm.devices.protocol import Device


def builtin_devices(opts: DeviceOptions, p: Peripherals) -> list[Device]:
    """Every built-in device of a machine with `opts`, in placement order."""
    devices: list[Device] = [Uart16550(p.console, L.COM1_PORT)] if opts.com1 else []
    devices += [
        DebugConsole(p.console, L.DEBUGCON_PORT),
        UcallPort(p.memory, p.console, p.notices, strict=opts.strict, port=L.UCALL_PORT),
    ]
    if opts.debug_exit is not None:
        devices.append(IsaDebugExit(*opts.debug_exit))
    if opts.platform == "pc":
        # the PC platform's modules load only for a machine that has it (start-up time)
        from vmm.board.pc import pc_devices

        devices += pc_devices(opts, p)
    if opts.testdev:
        from vmm.devices.testdev import PcTestdev

        devices.append(PcTestdev(p.irq_line, p.flush_page))
    return devices


def place(
    device: Device, ports: AddressSpace, mmio: AddressSpace, memory: GuestMemory, *, replace: bool = False
) -> None:
    """Put every region of `device` on its bus. MMIO inside RAM is refused: KVM would never
    exit for it, so the device would silently never be reached."""
    placed: list[tuple[AddressSpace, int, int]] = []
    try:
        for r in device.regions():
            if r.space == "mmio" and any(m.gpa < r.start + r.size and r.start < m.end for m in memory.regions):
                raise ConfigError(
                    f"{device.name}: MMIO {r.start:#x}-{r.start + r.size - 1:#x} lies inside guest RAM; use less RAM"
                )
            bus = ports if r.space == "io" else mmio
            bus.insert(r.start, r.size, r.handler, name=device.name, base=r.base, replace=replace)
            placed.append((bus, r.start, r.size))
    except ConfigError:
        for bus, start, size in placed:  # all of a device or none of it
            bus.remove(start, size)
        raise


def find(devices: Sequence[Device], kind: type) -> Device | None:
    return next((d for d in devices if isinstance(d, kind)), None)
