"""A multiboot kernel linked in low memory (guests/mb/mb-low.c, two links) under QEMU and pyvmm.

mb-low-a000 (segments 0xa000-0xc86c and 0xd000-0xfa30) runs under QEMU and must give the same
output and status under pyvmm. mb-low (0x8000-0xa86c, 0xb000-0xda30) fails under QEMU, whose
loader always puts the information structure at 0x9500, inside the text; pyvmm puts its boot
structures, the information and the module in the gaps and the kernel passes, with the lines
mb-low-a000 prints. Both kernels write and read back a pattern over every byte of low RAM they
were not told is in use, page 0 included, so a structure left there is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_qemu_compat_multiboot import Case, lines, run_pyvmm, run_qemu, status

pytestmark = pytest.mark.kvm

EXIT_OK, EXIT_FAILED = 0x16, 0x7D


@pytest.fixture(scope="module")
def module_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("low") / "env.txt"
    p.write_bytes(b"A=1\n")
    return p


def low_case(kernel: str, module: Path) -> Case:
    return Case(kernel, f"{kernel}.elf", append="low test", initrd=f"{module} mod args")


def expected_tail(case: Case) -> list[str]:
    return [
        "loader data outside the segments: info, cmdline, mmap, 1 module",
        f'cmdline "{case.image()} low test"',
        "segment contents: text tail and data head as linked",
        "own data: 0x800 bytes of .bss hold a written pattern",
        "low memory: pattern written and read back over all free RAM below 0xa0000",
        "low memory: page 0 included (0x00000000-0x00000fff)",
    ]


def test_a000_under_qemu_and_pyvmm(module_file: Path) -> None:
    case = low_case("mb-low-a000", module_file)
    want = run_qemu(case)
    assert want.status == status(EXIT_OK), want.serial + want.stderr.encode()
    assert lines(want) == [
        "mb-low: text 0x0000a000-0x0000c86c, data 0x0000d000-0x0000fa30 (file to 0x0000d060)",
        *expected_tail(case),
    ]
    got = run_pyvmm(case)
    assert got.serial == want.serial, got.stderr
    assert got.status == want.status, got.stderr


def test_8000_fails_under_qemu_and_passes_under_pyvmm(module_file: Path) -> None:
    case = low_case("mb-low", module_file)
    want = run_qemu(case)
    head = "mb-low: text 0x00008000-0x0000a86c, data 0x0000b000-0x0000da30 (file to 0x0000b060)"
    assert lines(want)[:2] == [head, "the loader's multiboot info at 0x00009500-0x00009534 overlaps the text segment"]
    assert want.status == status(EXIT_FAILED)
    got = run_pyvmm(case)
    assert got.status == status(EXIT_OK), got.serial + got.stderr.encode()
    assert lines(got) == [head, *expected_tail(case)]
