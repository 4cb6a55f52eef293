"""Plain ELF kernels (no multiboot header) from guests/mb/, under pyvmm only: QEMU's `-kernel`
takes an ELF only with a multiboot header or a PVH note, so there is no reference run. pyvmm enters
an ELF32 image in 32-bit protected mode and an ELF64 image in long mode with identity paging, at
e_entry. Each kernel checks that its data segment was copied and its .bss zeroed, prints one line
on COM1 and exits through isa-debug-exit.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import GUESTS, pyvmm

pytestmark = pytest.mark.kvm

MB: Path = GUESTS / "mb"
MB_HEADER_MAGIC = struct.pack("<I", 0x1BADB002)

# A kernel entered at its load address instead of e_entry exits with this code.
WRONG_ENTRY_CODE = 0x7C


def image(name: str) -> Path:
    p = MB / name
    if not p.exists():
        pytest.fail(f"kernel {p} is missing: run `make guests`")
    return p


@pytest.mark.parametrize(
    ("name", "elf_class", "load", "line", "code"),
    [
        ("elf32-hello.elf", 1, 0x200000, "Hello from a 32-bit ELF kernel (data ok, bss ok)", 0x17),
        ("elf64-hello.elf", 2, 0x100000, "Hello from a 64-bit ELF kernel (data ok, bss ok)", 0x16),
    ],
)
def test_plain_elf_kernel_runs(name: str, elf_class: int, load: int, line: str, code: int) -> None:
    data = image(name).read_bytes()
    # What makes this a plain ELF test: the right class, no multiboot header for the loader to
    # prefer, and an entry point that is not the load address.
    assert data[:4] == b"\x7fELF" and data[4] == elf_class
    assert MB_HEADER_MAGIC not in data[:8192]
    entry = struct.unpack_from("<I" if elf_class == 1 else "<Q", data, 24)[0]
    assert entry != load

    proc = pyvmm("run", str(image(name)), "--timeout", "30", timeout=60)
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert proc.stdout.decode(errors="replace") == line + "\n", err
    assert proc.returncode == (code << 1) | 1, err
    assert proc.returncode != (WRONG_ENTRY_CODE << 1) | 1
