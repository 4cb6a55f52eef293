"""ACPI and MP tables: checksums, signatures, lengths, one MADT entry per CPU, and placement where
an OS's scan of the BIOS area finds them."""

from __future__ import annotations

import struct

import pytest

from vmm.errors import ConfigError
from vmm.firmware import acpi, mptable

MIB = 1 << 20


class FakeMemory:
    """Guest RAM from 0 as one bytearray, with the calls the table writers use."""

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)

    def contains(self, gpa: int, length: int = 1) -> bool:
        return gpa >= 0 and gpa + length <= len(self.buf)

    def write(self, gpa: int, data: bytes) -> None:
        self.buf[gpa : gpa + len(data)] = data

    def read(self, gpa: int, length: int) -> bytes:
        return bytes(self.buf[gpa : gpa + length])


def sdt_at(mem: FakeMemory, gpa: int) -> bytes:
    length = struct.unpack_from("<I", mem.buf, gpa + 4)[0]
    return mem.read(gpa, length)


def madt_entries(madt: bytes) -> list[bytes]:
    out, off = [], 44
    while off < len(madt):
        n = madt[off + 1]
        out.append(madt[off : off + n])
        off += n
    return out


@pytest.mark.parametrize("ncpus", [1, 2, 4, 16])
def test_tables_found_by_a_bios_area_scan(ncpus: int) -> None:
    mem = FakeMemory(2 * MIB)
    rsdp = acpi.write_tables(mem, ncpus)
    assert acpi.find_rsdp(mem.read) == rsdp
    assert 0xE0000 <= rsdp < 0x100000 and rsdp % 16 == 0
    assert not any(mem.buf[: acpi.TABLE_AREA[0]])  # nothing written below the BIOS area

    raw = mem.read(rsdp, 20)
    assert raw[:8] == b"RSD PTR " and sum(raw) % 256 == 0 and raw[15] == 0  # revision 0 = ACPI 1.0
    rsdt_at = struct.unpack_from("<I", raw, 16)[0]
    rsdt = sdt_at(mem, rsdt_at)
    assert rsdt[:4] == b"RSDT" and sum(rsdt) % 256 == 0 and len(rsdt) == 36 + 3 * 4
    fadt_at, madt_at, waet_at = struct.unpack_from("<3I", rsdt, 36)
    tables = {t[:4]: t for t in (sdt_at(mem, a) for a in (fadt_at, madt_at, waet_at))}
    assert list(tables) == [b"FACP", b"APIC", b"WAET"]  # QEMU's order, without its HPET
    assert all(sum(t) % 256 == 0 for t in tables.values())
    assert rsdt_at + len(rsdt) <= madt_at and max(fadt_at, madt_at, waet_at) < 0xF0000


def test_fadt_facs_and_dsdt_as_a_kernel_reads_them() -> None:
    mem = FakeMemory(2 * MIB)
    rsdp = acpi.write_tables(mem, 1)
    rsdt = sdt_at(mem, struct.unpack_from("<I", mem.read(rsdp, 20), 16)[0])
    fadt = sdt_at(mem, struct.unpack_from("<I", rsdt, 36)[0])
    assert len(fadt) == 116 and fadt[8] == 1  # ACPI 1.0, revision 1
    facs_at, dsdt_at = struct.unpack_from("<II", fadt, 36)
    assert struct.unpack_from("<HI", fadt, 46) == (9, 0)  # SCI 9, no SMI command port
    assert struct.unpack_from("<I", fadt, 56)[0] == 0x600 and struct.unpack_from("<I", fadt, 64)[0] == 0x604
    assert struct.unpack_from("<I", fadt, 76)[0] == 0x608
    assert (fadt[88], fadt[89], fadt[91]) == (4, 2, 4)
    assert not struct.unpack_from("<I", fadt, 112)[0] & 1 << 8  # TMR_VAL_EXT clear: a 24-bit timer
    facs = mem.read(facs_at, 64)
    assert facs_at % 64 == 0 and facs[:4] == b"FACS" and struct.unpack_from("<I", facs, 4)[0] == 64 and facs[32] == 0
    dsdt = sdt_at(mem, dsdt_at)
    assert dsdt[:4] == b"DSDT" and sum(dsdt) % 256 == 0
    assert bytes.fromhex("085f53335f120604 01010000") in dsdt  # Name (_S3_, Package (4) {1, 1, 0, 0})
    assert bytes.fromhex("085f53355f120604 00000000") in dsdt


def test_madt_contents() -> None:
    ncpus = 3
    madt = acpi.build_madt(ncpus)
    assert struct.unpack_from("<II", madt, 36) == (0xFEE00000, 1)  # LAPIC address, PCAT_COMPAT
    entries = madt_entries(madt)
    lapics = [e for e in entries if e[0] == 0]
    assert [struct.unpack("<BBBBI", e) for e in lapics] == [(0, 8, i, i, 1) for i in range(ncpus)]
    (ioapic,) = [e for e in entries if e[0] == 1]
    assert struct.unpack("<BBBBII", ioapic) == (1, 12, ncpus, 0, 0xFEC00000, 0)
    (iso,) = [e for e in entries if e[0] == 2]
    assert struct.unpack("<BBBBIH", iso) == (2, 10, 0, 0, 2, 0)  # ISA IRQ 0 -> GSI 2
    (nmi,) = [e for e in entries if e[0] == 4]
    assert struct.unpack("<BBBHB", nmi) == (4, 6, 0xFF, 0, 1)
    assert len(madt) == 44 + 8 * ncpus + 12 + 10 + 6
    assert struct.unpack_from("<I", madt, 4)[0] == len(madt)


def test_header_fields() -> None:
    madt = acpi.build_madt(1)
    assert madt[10:16] == b"BOCHS " and madt[16:24] == b"BXPC    "


def test_checksum_helper() -> None:
    data = b"\x01\x02\xfd"
    assert (sum(data) + acpi.checksum(data)) % 256 == 0


def test_ram_below_1mib_is_refused() -> None:
    with pytest.raises(ConfigError):
        acpi.write_tables(FakeMemory(512 * 1024), 1)


def test_placement_outside_the_table_area_is_refused() -> None:
    with pytest.raises(ConfigError):
        acpi.write_tables(FakeMemory(2 * MIB), 1, base=0x9F000)
    with pytest.raises(ConfigError):
        acpi.check_placement([(0x2000, b"x")], area=(0, 0x100000))  # the monitor's page tables


def test_find_rsdp_ignores_a_bad_checksum() -> None:
    mem = FakeMemory(MIB)
    mem.write(0xE0000, b"RSD PTR " + bytes(12) + b"\x01")
    assert acpi.find_rsdp(mem.read) is None


def scan_mp(mem: FakeMemory) -> int | None:
    for gpa in range(0xF0000, 0x100000, 16):
        raw = mem.read(gpa, 16)
        if raw[:4] == b"_MP_" and sum(raw) % 256 == 0:
            return gpa
    return None


@pytest.mark.parametrize("ncpus", [1, 4])
def test_mp_table(ncpus: int) -> None:
    mem = FakeMemory(MIB)
    fp = mptable.write_tables(mem, ncpus)
    assert scan_mp(mem) == fp
    raw = mem.read(fp, 16)
    assert raw[8] == 1 and raw[9] == 4 and raw[11] == 0  # 16 bytes, spec 1.4, table present
    cfg_at = struct.unpack_from("<I", raw, 4)[0]
    length = struct.unpack_from("<H", mem.buf, cfg_at + 4)[0]
    cfg = mem.read(cfg_at, length)
    assert cfg[:4] == b"PCMP" and sum(cfg) % 256 == 0
    count = struct.unpack_from("<H", cfg, 34)[0]
    sizes = {0: 20, 1: 8, 2: 8, 3: 8, 4: 8}
    off, cpus, pins = 44, [], {}
    for _ in range(count):
        kind = cfg[off]
        if kind == 0:
            cpus.append((cfg[off + 1], cfg[off + 3]))
        elif kind == 3:
            pins[cfg[off + 5]] = cfg[off + 7]
        off += sizes[kind]
    assert off == length
    assert cpus == [(0, 3)] + [(i, 1) for i in range(1, ncpus)]  # APIC IDs, enabled (+ BSP)
    assert pins[0] == 2 and 2 not in pins and pins[1] == 1 and len(pins) == 15
