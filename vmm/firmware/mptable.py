"""The Intel MultiProcessor Specification 1.4 tables: the "_MP_" floating pointer and the "PCMP"
configuration table, for guests that find CPUs and interrupt routing the pre-ACPI way.

The floating pointer must be in one of the places the specification has an OS search; the BIOS
ROM range 0xF0000-0xFFFFF is the one that does not depend on the EBDA or on how much base memory
there is, so the pointer goes at 0xF0000 and the configuration table right after it. The contents
follow SeaBIOS's table for QEMU: one ISA bus, ISA IRQ n on I/O APIC pin n except IRQ 0 on pin 2
(IRQ 2 is the cascade and is left out), ExtINT on the BSP's LINT0 and NMI on every LINT1.
"""

from __future__ import annotations

import struct

from vmm.errors import ConfigError
from vmm.firmware.acpi import IO_APIC_ADDRESS, LOCAL_APIC_ADDRESS, checksum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from vmm.firmware.acpi import Memory

FLOATING_SIGNATURE = b"_MP_"
CONFIG_SIGNATURE = b"PCMP"
SPEC_REV = 4  # MP specification 1.4
MP_AREA = (0xF0000, 0x100000)
FLOATING_SIZE = 16
CONFIG_HEADER = struct.Struct("<4sHBB8s12sIHHIHBB")  # 44 bytes
OEM_ID = b"BOCHSCPU"
PRODUCT_ID = b"0.1         "

ENTRY_PROCESSOR, ENTRY_BUS, ENTRY_IOAPIC, ENTRY_IO_INTERRUPT, ENTRY_LOCAL_INTERRUPT = 0, 1, 2, 3, 4
CPU_ENABLED, CPU_BSP = 0x1, 0x2
LAPIC_VERSION = 0x14  # an integrated local APIC, as KVM's reports
IOAPIC_VERSION = 0x11  # KVM's in-kernel I/O APIC
IOAPIC_ENABLED = 0x1
INT_VECTORED, INT_NMI, INT_SMI, INT_EXTINT = 0, 1, 2, 3
IRQ_CONFORMS = 0  # polarity and trigger as the bus specifies
ISA_BUS_ID = 0
ALL_LAPICS = 0xFF
# what a processor entry reports when nothing more precise is known: family 6, with FPU and APIC
CPU_SIGNATURE = 0x600
CPU_FEATURES = 0x201


def build_config_table(ncpus: int, *, ioapic_id: int | None = None) -> bytes:
    if not 1 <= ncpus <= 254:
        raise ValueError(f"{ncpus} CPUs do not fit 8-bit APIC IDs next to the I/O APIC")
    ioapic = ncpus if ioapic_id is None else ioapic_id
    entries: list[bytes] = []
    for cpu in range(ncpus):
        flags = CPU_ENABLED | (CPU_BSP if cpu == 0 else 0)
        entries.append(
            struct.pack("<BBBBII8x", ENTRY_PROCESSOR, cpu, LAPIC_VERSION, flags, CPU_SIGNATURE, CPU_FEATURES)
        )
    entries.append(struct.pack("<BB6s", ENTRY_BUS, ISA_BUS_ID, b"ISA   "))
    entries.append(struct.pack("<BBBBI", ENTRY_IOAPIC, ioapic, IOAPIC_VERSION, IOAPIC_ENABLED, IO_APIC_ADDRESS))
    for irq in range(16):
        if irq == 2:
            continue  # the cascade; pin 2 carries IRQ 0
        pin = 2 if irq == 0 else irq
        entries.append(
            struct.pack("<BBHBBBB", ENTRY_IO_INTERRUPT, INT_VECTORED, IRQ_CONFORMS, ISA_BUS_ID, irq, ioapic, pin)
        )
    entries.append(struct.pack("<BBHBBBB", ENTRY_LOCAL_INTERRUPT, INT_EXTINT, IRQ_CONFORMS, ISA_BUS_ID, 0, 0, 0))
    entries.append(struct.pack("<BBHBBBB", ENTRY_LOCAL_INTERRUPT, INT_NMI, IRQ_CONFORMS, ISA_BUS_ID, 0, ALL_LAPICS, 1))
    body = b"".join(entries)
    header = CONFIG_HEADER.pack(
        CONFIG_SIGNATURE,
        CONFIG_HEADER.size + len(body),
        SPEC_REV,
        0,
        OEM_ID,
        PRODUCT_ID,
        0,
        0,
        len(entries),
        LOCAL_APIC_ADDRESS,
        0,
        0,
        0,
    )
    table = bytearray(header + body)
    table[7] = checksum(table)
    return bytes(table)


def build_floating_pointer(config_address: int) -> bytes:
    # length is in 16-byte units; feature byte 1 = 0 means "a configuration table is present"
    raw = bytearray(struct.pack("<4sIBBB5B", FLOATING_SIGNATURE, config_address, 1, SPEC_REV, 0, 0, 0, 0, 0, 0))
    raw[10] = checksum(raw)
    return bytes(raw)


def build_tables(ncpus: int, base: int = MP_AREA[0], *, ioapic_id: int | None = None) -> list[tuple[int, bytes]]:
    """[(guest-physical address, bytes)]: the floating pointer at `base`, the table after it."""
    config_at = base + FLOATING_SIZE
    return [(base, build_floating_pointer(config_at)), (config_at, build_config_table(ncpus, ioapic_id=ioapic_id))]


def write_tables(memory: Memory, ncpus: int, base: int = MP_AREA[0], *, ioapic_id: int | None = None) -> int:
    """Write the MP tables into guest RAM and return the floating pointer's address."""
    if base % 16:
        raise ConfigError(f"the MP floating pointer must be 16-byte aligned, not at {base:#x}")
    pieces = build_tables(ncpus, base, ioapic_id=ioapic_id)
    for gpa, data in pieces:
        if gpa < MP_AREA[0] or gpa + len(data) > MP_AREA[1]:
            raise ConfigError(f"MP table at {gpa:#x}+{len(data):#x} is outside {MP_AREA[0]:#x}-{MP_AREA[1]:#x}")
        if not memory.contains(gpa, len(data)):
            raise ConfigError(f"guest RAM does not cover {gpa:#x}+{len(data):#x} for the MP table (1 MiB needed)")
        memory.write(gpa, data)
    return base
