"""ACPI tables, the PM timer, S3 with an RTC alarm and S5 (guests/mb/mb-acpi.c) under QEMU and pyvmm:
the same output and status. QEMU runs with -no-hpet (and pyvmm is given it too): pyvmm has no HPET,
so the RSDT lists FACP APIC WAET, as QEMU's does then."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import GUESTS, pyvmm
from test_qemu_compat_multiboot import Case, lines, run_pyvmm, run_qemu, status

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


@dataclass(frozen=True)
class AcpiCase(Case):
    def qemu_args(self) -> list[str]:
        return [*super().qemu_args(), "-machine", "pc", "-no-hpet"]

    def pyvmm_args(self) -> list[str]:
        return [*super().pyvmm_args(), "-machine", "pc", "-no-hpet"]


S3 = AcpiCase("mb-acpi-s3", "mb-acpi.elf")
S5 = AcpiCase("mb-acpi-s5", "mb-acpi.elf", append="s5")
# S3 with APs running: waking resets them; the kernel checks they stood still and starts them again
S3_SMP2 = AcpiCase("mb-acpi-s3-smp2", "mb-acpi.elf", smp=2, append="smp")
S3_SMP3 = AcpiCase("mb-acpi-s3-smp3", "mb-acpi.elf", smp=3, append="smp")
TABLE_LINES = [
    'acpi: rsdp revision 0 oem "BOCHS " in the bios area',
    "acpi: rsdt entries FACP APIC WAET",
    "acpi: fadt revision 1, sci 9, smi_cmd 0x0, acpi_enable 0x00",
    "acpi: pm1a_evt_blk 0x600 len 4, pm1a_cnt_blk 0x604 len 2, pm_tmr_blk 0x608 len 4, tmr_val_ext 0",
    "acpi: facs length 64 version 0 (no checksum: none defined)",
    "acpi: dsdt checksum ok",
    "acpi: _S3_ package of 4: SLP_TYPa 1, SLP_TYPb 1",
    "acpi: _S5_ package of 4: SLP_TYPa 0, SLP_TYPb 0",
    "acpi: pm timer ran 3 ticks per pit tick over 65535 pit ticks (3.579545 MHz within 25%)",
    "acpi: mode on (SCI_EN already set)",
]


def test_under_qemu() -> None:
    s3 = run_qemu(S3)
    assert s3.status == status(0x19), s3.serial + s3.stderr.encode()
    assert lines(s3) == [
        *TABLE_LINES,
        "s3: waking vector 0x60000, rtc alarm in 2 s, 0x10000 bytes of pattern at 0x200000",
        "s3: sleeping",
        "resumed from S3",
        "s3: pattern intact, pm1 status: WAK_STS 1, RTC_STS 1",
    ]
    s5 = run_qemu(S5)
    assert s5.status == 0 and lines(s5) == [*TABLE_LINES, "s5: SLP_TYPa 0, powering off"]


def test_s3_with_aps_under_qemu() -> None:
    got = run_qemu(S3_SMP2)
    assert got.status == status(0x19), got.serial + got.stderr.encode()
    assert lines(got) == [
        *TABLE_LINES,
        "smp: 2 cpus, 1 ap started before sleeping",
        "s3: waking vector 0x60000, rtc alarm in 2 s, 0x10000 bytes of pattern at 0x200000",
        "s3: sleeping",
        "resumed from S3",
        "s3: pattern intact, pm1 status: WAK_STS 1, RTC_STS 1",
        "smp: the aps stood still while asleep (loop count unchanged)",
        "smp: 1 ap started again after resuming",
    ]


@pytest.mark.parametrize("case", [S3, S5, S3_SMP2, S3_SMP3], ids=lambda c: c.id)
def test_pyvmm_matches_qemu(case: AcpiCase) -> None:
    want = run_qemu(case)
    got = run_pyvmm(case)
    assert got.serial.decode() == want.serial.decode(), got.stderr
    assert got.status == want.status, got.stderr


def test_s3_on_two_vcpus_whose_ap_never_started() -> None:
    """S3 from a kernel that never starts its AP: vCPU 1 waits for a start-up IPI before and after;
    the BSP's run is the one-CPU run."""
    got = run_pyvmm(AcpiCase("mb-acpi-s3-smp2-idle", "mb-acpi.elf", smp=2))
    assert got.status == status(0x19), got.stderr
    assert lines(got)[-2:] == ["resumed from S3", "s3: pattern intact, pm1 status: WAK_STS 1, RTC_STS 1"]


def test_a_timeout_ends_the_s3_wait() -> None:
    proc = pyvmm("run", "-q", str(GUESTS / "mb" / "mb-acpi.elf"), "--timeout", "0.5")
    assert proc.returncode == ExitStatus.TIMEOUT, proc.stderr
    assert "resumed from S3" not in proc.stdout.decode()  # the stop ended the wait: it never woke
    assert "timed out after 0.5 s" in proc.stderr.decode()
