"""ACPI tables that tell a guest about its CPUs and interrupt controllers (RSDP, RSDT and MADT), and
about power management (FADT, FACS, DSDT, WAET: vmm.firmware.acpi_pm).

Pure builders plus `write_tables`, which places them in the BIOS area where an OS looks for them:
the RSDP on a 16-byte boundary between 0xE0000 and 0xFFFFF (ACPI's search area for the BIOS
read-only memory space), the RSDT and MADT right after it, all below 0xF0000.

The MADT describes what a pyvmm VM with KVM's in-kernel irqchip has: one local APIC per vCPU
(ACPI processor ID = APIC ID = vCPU index), one I/O APIC at 0xFEC00000 with GSIs from 0, the 8259
pair (PCAT_COMPAT), the timer's ISA IRQ 0 arriving on GSI 2 (KVM's and QEMU's wiring), and NMIs on
every local APIC's LINT1. Only ACPI 1.0 structures are used, so any ACPI-aware OS can read them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from vmm import layout as L
from vmm.errors import ConfigError
from vmm.firmware import acpi_pm as pm

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Protocol

RSDP_SIGNATURE = b"RSD PTR "
RSDP_V1_SIZE = 20
SDT_HEADER = struct.Struct("<4sIBB6s8sI4sI")  # signature, length, revision, checksum, OEM..., creator
SDT_HEADER_SIZE = SDT_HEADER.size  # 36
CHECKSUM_OFFSET = 9

OEM_ID = b"BOCHS "  # what QEMU's tables carry, so guests that match on it see the same
OEM_TABLE_ID = b"BXPC    "
OEM_REVISION = 1
CREATOR_ID = b"BXPC"
CREATOR_REVISION = 1

LOCAL_APIC_ADDRESS = 0xFEE00000
IO_APIC_ADDRESS = 0xFEC00000
MADT_PCAT_COMPAT = 0x1  # a dual 8259 is present as well

MADT_LOCAL_APIC = 0
MADT_IO_APIC = 1
MADT_INTERRUPT_OVERRIDE = 2
MADT_LOCAL_APIC_NMI = 4
LOCAL_APIC_ENABLED = 0x1
ALL_PROCESSORS = 0xFF
MPS_INTI_CONFORMS = 0  # polarity and trigger mode as the bus specifies (ISA: high, edge)

BIOS_AREA = (0xE0000, 0x100000)  # where an OS searches for the RSDP
TABLE_AREA = (0xE0000, 0xF0000)  # where these tables go; 0xF0000 up is left to an MP table
LOADER_AREA = (0xC000, 0xA0000)  # low RAM a multiboot loader may use


if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time

    class Memory(Protocol):
        def write(self, gpa: int, data: bytes) -> None: ...

        def contains(self, gpa: int, length: int = 1) -> bool: ...


def checksum(data: bytes | bytearray) -> int:
    """The byte that makes `data` plus it sum to 0 modulo 256."""
    return -sum(data) & 0xFF


def _with_checksum(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] = 0
    out[offset] = checksum(out)
    return bytes(out)


def sdt(signature: bytes, revision: int, body: bytes) -> bytes:
    """A system description table: the common 36-byte header (with its checksum) and `body`."""
    header = SDT_HEADER.pack(
        signature,
        SDT_HEADER_SIZE + len(body),
        revision,
        0,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        CREATOR_ID,
        CREATOR_REVISION,
    )
    return _with_checksum(header + body, CHECKSUM_OFFSET)


def build_rsdp(rsdt_address: int) -> bytes:
    """The ACPI 1.0 root pointer (revision 0): 20 bytes, checksummed over all of them."""
    raw = struct.pack("<8sB6sBI", RSDP_SIGNATURE, 0, OEM_ID, 0, rsdt_address)
    return _with_checksum(raw, 8)


def build_rsdt(table_addresses: list[int]) -> bytes:
    return sdt(b"RSDT", 1, b"".join(struct.pack("<I", a) for a in table_addresses))


def build_madt(ncpus: int, *, ioapic_id: int | None = None) -> bytes:
    """The MADT ("APIC") for `ncpus` vCPUs; the I/O APIC's ID defaults to `ncpus` (the first ID
    after the local APICs, as SeaBIOS numbers it)."""
    if not 1 <= ncpus <= 254:
        raise ValueError(f"{ncpus} CPUs do not fit 8-bit APIC IDs next to the I/O APIC")
    ioapic = ncpus if ioapic_id is None else ioapic_id
    body = bytearray(struct.pack("<II", LOCAL_APIC_ADDRESS, MADT_PCAT_COMPAT))
    for cpu in range(ncpus):
        body += struct.pack("<BBBBI", MADT_LOCAL_APIC, 8, cpu, cpu, LOCAL_APIC_ENABLED)
    body += struct.pack("<BBBBII", MADT_IO_APIC, 12, ioapic, 0, IO_APIC_ADDRESS, 0)
    # the PIT drives ISA IRQ 0, which the I/O APIC (KVM's as QEMU's) receives on pin 2
    body += struct.pack("<BBBBIH", MADT_INTERRUPT_OVERRIDE, 10, 0, 0, 2, MPS_INTI_CONFORMS)
    body += struct.pack("<BBBHB", MADT_LOCAL_APIC_NMI, 6, ALL_PROCESSORS, MPS_INTI_CONFORMS, 1)
    return sdt(b"APIC", 1, bytes(body))


def _align(x: int, a: int = 16) -> int:
    return (x + a - 1) // a * a


def build_tables(ncpus: int, base: int = TABLE_AREA[0], *, ioapic_id: int | None = None) -> list[tuple[int, bytes]]:
    """[(guest-physical address, bytes)] for the RSDP (first), the RSDT, the MADT, the FACS, the
    DSDT, the FADT and the WAET, laid out from `base` on 16-byte boundaries (the FACS on 64)."""
    rsdp_at = _align(base)
    rsdt_at = _align(rsdp_at + RSDP_V1_SIZE)
    rsdt_size = SDT_HEADER_SIZE + 4 * 3  # FACP, APIC, WAET: the order QEMU lists them in
    madt = build_madt(ncpus, ioapic_id=ioapic_id)
    madt_at = _align(rsdt_at + rsdt_size)
    facs_at = _align(madt_at + len(madt), pm.FACS_ALIGN)
    dsdt = sdt(b"DSDT", 1, pm.DSDT_AML)
    dsdt_at = _align(facs_at + pm.FACS_SIZE)
    fadt_at = _align(dsdt_at + len(dsdt))
    fadt = sdt(b"FACP", 1, pm.fadt_body(facs_at, dsdt_at))
    waet_at = _align(fadt_at + len(fadt))
    waet = sdt(b"WAET", 1, struct.pack("<I", pm.WAET_PM_TIMER_GOOD))
    rsdt = build_rsdt([fadt_at, madt_at, waet_at])
    return [
        (rsdp_at, build_rsdp(rsdt_at)), (rsdt_at, rsdt), (madt_at, madt), (facs_at, pm.build_facs()),
        (dsdt_at, dsdt), (fadt_at, fadt), (waet_at, waet),
    ]  # fmt: skip


def facs_address(ncpus: int, base: int = TABLE_AREA[0]) -> int:
    """Where build_tables puts the FACS."""
    return next(gpa for gpa, data in build_tables(ncpus, base) if data[:4] == b"FACS")


def check_placement(pieces: list[tuple[int, bytes]], area: tuple[int, int] = TABLE_AREA) -> None:
    """Refuse a layout that leaves `area` or touches memory the monitor or a loader uses."""
    for gpa, data in pieces:
        end = gpa + len(data)
        if gpa < area[0] or end > area[1]:
            raise ConfigError(f"ACPI table at {gpa:#x}-{end:#x} is outside {area[0]:#x}-{area[1]:#x}")
        for name, (lo, hi) in (("monitor", L.MONITOR_AREA), ("loader", LOADER_AREA)):
            if gpa < hi and lo < end:
                raise ConfigError(f"ACPI table at {gpa:#x}-{end:#x} overlaps the {name}'s area {lo:#x}-{hi:#x}")


def write_tables(memory: Memory, ncpus: int, base: int = TABLE_AREA[0], *, ioapic_id: int | None = None) -> int:
    """Write the tables into guest RAM and return the RSDP's address."""
    pieces = build_tables(ncpus, base, ioapic_id=ioapic_id)
    check_placement(pieces)
    for gpa, data in pieces:
        if not memory.contains(gpa, len(data)):
            raise ConfigError(f"guest RAM does not cover {gpa:#x}+{len(data):#x} for the ACPI tables (1 MiB needed)")
        memory.write(gpa, data)
    return pieces[0][0]


def find_rsdp(read: Callable[[int, int], bytes], area: tuple[int, int] = BIOS_AREA) -> int | None:
    """Search `area` on 16-byte boundaries for a valid v1 RSDP, as an OS does; its address or None."""
    for gpa in range(_align(area[0]), area[1] - RSDP_V1_SIZE + 1, 16):
        raw = read(gpa, RSDP_V1_SIZE)
        if raw[:8] == RSDP_SIGNATURE and sum(raw) & 0xFF == 0:
            return gpa
    return None
