"""fw_cfg: QEMU's key numbers and encodings, the selector/offset state machine, the file directory,
and the port decoding (by access width, as QEMU's combined 0x510-0x511 window does)."""

from __future__ import annotations

import struct

import pytest

from tests.fakes import port_access
from vmm.devices import fw_cfg as F
from vmm.devices.fw_cfg import FwCfg


def read_item(fw: FwCfg, key: int, n: int) -> bytes:
    fw.select(key)
    return bytes(fw.read_byte() for _ in range(n))


def io_read_item(fw: FwCfg, key: int, n: int) -> bytes:
    port_access(fw, F.SELECTOR_PORT, 2, key)
    return bytes(port_access(fw, F.DATA_PORT, 1)[0] for _ in range(n))


def test_key_numbers_are_qemus() -> None:
    assert (F.SIGNATURE, F.ID, F.UUID, F.RAM_SIZE, F.NOGRAPHIC, F.NB_CPUS, F.MACHINE_ID) == (0, 1, 2, 3, 4, 5, 6)
    assert (F.MAX_CPUS, F.FILE_DIR, F.FILE_FIRST) == (0x0F, 0x19, 0x20)
    assert (F.CMDLINE_SIZE, F.CMDLINE_DATA, F.IRQ0_OVERRIDE) == (0x14, 0x15, 0x8002)
    assert (F.SELECTOR_PORT, F.DATA_PORT) == (0x510, 0x511)


def test_signature_id_and_uuid() -> None:
    fw = FwCfg()
    assert read_item(fw, F.SIGNATURE, 4) == b"QEMU"
    assert read_item(fw, F.ID, 4) == struct.pack("<I", 1)  # traditional interface, no DMA
    assert read_item(fw, F.UUID, 16) == bytes(16)


def test_signature_is_selected_at_reset() -> None:
    fw = FwCfg()
    assert bytes(fw.read_byte() for _ in range(4)) == b"QEMU"


def test_reads_past_the_end_and_of_empty_keys_return_zero() -> None:
    fw = FwCfg()
    assert read_item(fw, F.SIGNATURE, 8) == b"QEMU\0\0\0\0"
    assert read_item(fw, F.MACHINE_ID, 4) == bytes(4)  # x86 QEMU leaves it empty too
    assert read_item(fw, 0x3FFF, 2) == bytes(2)


def test_selecting_rewinds() -> None:
    fw = FwCfg()
    read_item(fw, F.SIGNATURE, 2)
    assert read_item(fw, F.SIGNATURE, 4) == b"QEMU"


def test_ram_size_and_cpu_counts_are_little_endian() -> None:
    fw = FwCfg()
    fw.set_u64(F.RAM_SIZE, 128 << 20)
    fw.set_u16(F.NB_CPUS, 3)
    fw.set_u16(F.MAX_CPUS, 4)
    assert read_item(fw, F.RAM_SIZE, 8) == (128 << 20).to_bytes(8, "little")
    assert read_item(fw, F.NB_CPUS, 2) == b"\x03\x00"
    assert read_item(fw, F.MAX_CPUS, 2) == b"\x04\x00"


def test_file_directory_is_big_endian_sorted_by_name() -> None:
    fw = FwCfg()
    assert read_item(fw, F.FILE_DIR, 4) == bytes(4)
    sel_b = fw.add_file("etc/zeta", b"zz")
    sel_a = fw.add_file("etc/alpha", b"hello!")
    assert (fw.file_selector("etc/alpha"), fw.file_selector("etc/zeta")) == (0x20, 0x21)
    assert sel_a == 0x20 and sel_b == 0x20  # adding a name that sorts first moved the other one
    raw = read_item(fw, F.FILE_DIR, 4 + 2 * 64)
    assert struct.unpack(">I", raw[:4]) == (2,)
    entries = [struct.unpack(">IHH56s", raw[4 + 64 * i : 4 + 64 * (i + 1)]) for i in range(2)]
    assert entries[0] == (6, 0x20, 0, b"etc/alpha".ljust(56, b"\0"))
    assert entries[1] == (2, 0x21, 0, b"etc/zeta".ljust(56, b"\0"))
    assert read_item(fw, 0x20, 6) == b"hello!"
    assert read_item(fw, 0x21, 3) == b"zz\0"


def test_file_replacement_and_bad_names() -> None:
    fw = FwCfg()
    fw.add_file("f", b"1")
    fw.add_file("f", b"22")
    assert read_item(fw, F.FILE_DIR, 8)[:4] == b"\0\0\0\1"
    assert read_item(fw, 0x20, 2) == b"22"
    with pytest.raises(ValueError):
        fw.add_file("x" * 56, b"")
    with pytest.raises(ValueError):
        fw.set_bytes(0x20, b"files only through add_file")


def test_cmdline_keys() -> None:
    fw = FwCfg()
    fw.set_cmdline("console=ttyS0")
    assert read_item(fw, F.CMDLINE_SIZE, 4) == struct.pack("<I", 14)
    assert read_item(fw, F.CMDLINE_DATA, 14) == b"console=ttyS0\0"


def test_ports_select_by_width_and_ignore_data_writes() -> None:
    fw = FwCfg()
    fw.set_u16(F.NB_CPUS, 2)
    assert io_read_item(fw, F.SIGNATURE, 2) == b"QE"
    port_access(fw, F.DATA_PORT, 1, 0x55)  # dropped
    assert port_access(fw, F.DATA_PORT, 1)[0] == ord("M")  # the offset did not move either
    assert io_read_item(fw, F.NB_CPUS, 2) == b"\x02\x00"
    # QEMU tells selector from data by width: a 16-bit write to 0x511 selects as well
    port_access(fw, F.DATA_PORT, 2, F.SIGNATURE)
    assert fw.read_byte() == ord("Q")


def test_arch_local_keys() -> None:
    fw = FwCfg()
    fw.set_u32(F.IRQ0_OVERRIDE, 1)
    assert read_item(fw, F.IRQ0_OVERRIDE, 4) == b"\1\0\0\0"
    assert read_item(fw, F.IRQ0_OVERRIDE & F.ENTRY_MASK, 4) == bytes(4)  # without bit 15 it is the UUID
