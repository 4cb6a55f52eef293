"""The ACPI tables that describe power management: the FADT ("FACP", revision 1) with the PM1a
event and control blocks and the PM timer, the FACS (where a kernel leaves its waking vector), a
minimal DSDT holding only the \\_S3_ and \\_S5_ sleep-type packages, and the WAET.

The values are those QEMU's pc machine gives a kernel (PIIX4 PM at 0x600, SCI on IRQ 9, no SMI
command port, so ACPI mode is on from the start: SCI_EN is set in PM1a_CNT at boot), so a kernel
written against QEMU finds the same ports and sleep types. There is no HPET, so no HPET table.
"""

from __future__ import annotations

import struct

from vmm import layout as L

FADT_SIZE = 116  # ACPI 1.0
FACS_SIZE = 64
FACS_ALIGN = 64
FADT_FLAG_WBINVD = 1 << 0
FADT_FLAG_PROC_C1 = 1 << 2
NO_C_STATE_LATENCY = 0xFFF  # P_LVL2/3 latencies over 100/1000 us: C2 and C3 not supported
RTC_CENTURY_INDEX = 0x32  # QEMU's CMOS century byte

# AML: Name (_S3_, Package (4) {1, 1, 0, 0}) and Name (_S5_, Package (4) {0, 0, 0, 0}), the bytes
# QEMU's DSDT holds (SLP_TYPa, SLP_TYPb, two reserved)
def _sleep_package(name: bytes, slp_typ: int) -> bytes:
    return b"\x08" + name + b"\x12\x06\x04" + bytes([slp_typ, slp_typ, 0, 0])


DSDT_AML = _sleep_package(b"_S3_", L.SLP_TYP_S3) + _sleep_package(b"_S5_", L.SLP_TYP_S5)
WAET_PM_TIMER_GOOD = 1 << 1  # one read of the PM timer is enough (no need to read it twice)


def fadt_body(facs: int, dsdt: int) -> bytes:
    """The FADT after its 36-byte header (80 bytes)."""
    body = bytearray(FADT_SIZE - 36)

    def put(offset: int, fmt: str, value: int) -> None:
        struct.pack_into(fmt, body, offset - 36, value)

    put(36, "<I", facs)  # FIRMWARE_CTRL
    put(40, "<I", dsdt)
    put(46, "<H", L.SCI_IRQ)
    put(48, "<I", 0)  # SMI_CMD: none, ACPI mode is always on
    put(56, "<I", L.PM1A_EVT_BLK)
    put(64, "<I", L.PM1A_CNT_BLK)
    put(76, "<I", L.PM_TMR_BLK)
    put(88, "<B", L.PM1_EVT_LEN)
    put(89, "<B", L.PM1_CNT_LEN)
    put(91, "<B", L.PM_TMR_LEN)
    put(96, "<H", NO_C_STATE_LATENCY)
    put(98, "<H", NO_C_STATE_LATENCY)
    put(108, "<B", RTC_CENTURY_INDEX)
    put(112, "<I", FADT_FLAG_WBINVD | FADT_FLAG_PROC_C1)  # TMR_VAL_EXT (bit 8) clear: 24 bits
    return bytes(body)


def build_facs() -> bytes:
    """Signature, length, hardware signature, waking vector (0 until the kernel sets it), global
    lock, flags, X waking vector, version 0: ACPI 1.0's 64 bytes, no checksum."""
    return struct.pack("<4sIIIII Q B31x".replace(" ", ""), b"FACS", FACS_SIZE, 0, 0, 0, 0, 0, 0)
