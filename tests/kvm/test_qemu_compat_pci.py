"""PCI bus 0 and pci-testdev (guests/mb/mb-pci.c) under QEMU and pyvmm: the same output and status.

The kernel enumerates bus 0 through configuration mechanism #1, sizes pci-testdev's BARs and runs
its six tests; by default it prints the host bridge and pci-testdev, the two functions a test
kernel drives; with `-append all` every function on bus 0, QEMU's PIIX3/PIIX4 functions at 00:01.x
included, as an `lspci` would list them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from test_qemu_compat_multiboot import Case, lines, run_pyvmm, run_qemu, status

pytestmark = pytest.mark.kvm


@dataclass(frozen=True)
class DeviceCase(Case):
    devices: tuple[str, ...] = ()

    def qemu_args(self) -> list[str]:
        return [*super().qemu_args(), *(a for d in self.devices for a in ("-device", d))]

    def pyvmm_args(self) -> list[str]:
        return [*super().pyvmm_args(), *(a for d in self.devices for a in ("-device", d))]


PCI = DeviceCase("mb-pci", "mb-pci.elf", devices=("pci-testdev",))
NO_TESTDEV = DeviceCase("mb-pci-empty", "mb-pci.elf")
ALL = DeviceCase("mb-pci-all", "mb-pci.elf", append="all", devices=("pci-testdev",))
ALL_NO_TESTDEV = DeviceCase("mb-pci-all-empty", "mb-pci.elf", append="all")
PIIX_LINES = [
    "00:00.0 8086:1237 class 06.00.00 rev 0x02 header 0x00 subsystem 1af4:1100",
    "00:01.0 8086:7000 class 06.01.00 rev 0x00 header 0x80 subsystem 1af4:1100",
    "00:01.1 8086:7010 class 01.01.80 rev 0x00 header 0x00 subsystem 1af4:1100",
    "00:01.3 8086:7113 class 06.80.00 rev 0x03 header 0x00 subsystem 1af4:1100",
]

TESTS = [
    ("mmio", 0, "mmio-no-eventfd", 0x800, 0xFA, 16),
    ("mmio", 1, "mmio-wildcard-eventfd", 0x801, 0xCE, 0),
    ("mmio", 2, "mmio-datamatch-eventfd", 0x802, 0xFA, 0),
    ("portio", 0, "portio-no-eventfd", 0x83, 0xFA, 16),
    ("portio", 1, "portio-wildcard-eventfd", 0x84, 0xCE, 0),
    ("portio", 2, "portio-datamatch-eventfd", 0x85, 0xFA, 0),
]


def test_pci_testdev_under_qemu() -> None:
    r = run_qemu(PCI)
    assert r.status == status(0x17), r.serial + r.stderr.encode()
    assert lines(r) == [
        "00:00.0 8086:1237 class 06.00.00 rev 0x02 header 0x00 subsystem 1af4:1100",
        "00:02.0 1b36:0005 class 00.ff.00 rev 0x00 header 0x00 subsystem 1af4:1100",
        "pci-testdev at 00:02.0, interrupt pin 0",
        "  bar0 mem32 size 0x1000",
        "  bar1 io size 0x100",
        "  bar2-5 not implemented",
        "  before a test is selected: reads 0",
        *(
            f'  {kind} test {n} "{name}": offset {off:#x} width 1 data {data:#x}, 16 writes, count {count}'
            for kind, n, name, off, data, count in TESTS
        ),
        "  test 3 selects nothing: reads 0",
    ]


def test_every_function_under_qemu() -> None:
    r = run_qemu(ALL_NO_TESTDEV)
    assert lines(r) == [*PIIX_LINES, "pci: 4 functions on bus 0", "no pci-testdev (1b36:0005) on bus 0"]
    assert lines(run_qemu(ALL))[:6] == [
        *PIIX_LINES,
        "00:02.0 1b36:0005 class 00.ff.00 rev 0x00 header 0x00 subsystem 1af4:1100",
        "pci: 5 functions on bus 0",
    ]


@pytest.mark.parametrize("case", [PCI, NO_TESTDEV, ALL, ALL_NO_TESTDEV], ids=lambda c: c.id)
def test_pyvmm_matches_qemu(case: DeviceCase) -> None:
    want = run_qemu(case)
    got = run_pyvmm(case)
    assert "Traceback" not in got.stderr, got.stderr
    assert got.serial.decode(errors="replace") == want.serial.decode(errors="replace"), got.stderr
    assert got.status == want.status, got.stderr
