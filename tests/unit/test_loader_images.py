"""Image builders shared by the loader tests, and checks that the builders themselves produce
what they claim (so a loader failure is never a builder bug in disguise).

Other loader tests import from here; it stays a test module so it lives with them.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vmm.board.memory import GuestMemory
from vmm.cpu.modes import BootArea, CpuMode

EM_386, EM_X86_64 = 3, 62
PT_LOAD, PT_NOTE = 1, 4
MB_MAGIC = 0x1BADB002


@dataclass
class Seg:
    paddr: int
    data: bytes
    memsz: int | None = None  # defaults to len(data)
    vaddr: int | None = None  # defaults to paddr
    p_type: int = PT_LOAD


def ehdr_size(bits: int) -> int:
    return 52 if bits == 32 else 64


def phent_size(bits: int) -> int:
    return 32 if bits == 32 else 56


def elf(
    bits: int,
    segs: list[Seg],
    entry: int | None = None,
    *,
    machine: int | None = None,
    e_type: int = 2,
    body_prefix: bytes = b"",
) -> bytes:
    """A little-endian ELF executable: header, program headers, then `body_prefix` and each
    segment's bytes in order. Entry defaults to the first segment's address."""
    machine = (EM_386 if bits == 32 else EM_X86_64) if machine is None else machine
    entry = segs[0].paddr if entry is None and segs else (entry or 0)
    phoff = ehdr_size(bits)
    body = phoff + phent_size(bits) * len(segs) + len(body_prefix)
    phdrs, blobs = b"", b""
    for s in segs:
        offset = body + len(blobs)
        memsz = len(s.data) if s.memsz is None else s.memsz
        vaddr = s.paddr if s.vaddr is None else s.vaddr
        if bits == 32:
            phdrs += struct.pack("<IIIIIIII", s.p_type, offset, vaddr, s.paddr, len(s.data), memsz, 5, 0x1000)
        else:
            phdrs += struct.pack("<IIQQQQQQ", s.p_type, 5, offset, vaddr, s.paddr, len(s.data), memsz, 0x1000)
        blobs += s.data
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1, 1]) + bytes(9)
    if bits == 32:
        hdr = struct.pack("<HHIIIIIHHHHHH", e_type, machine, 1, entry, phoff, 0, 0, 52, 32, len(segs), 40, 0, 0)
    else:
        hdr = struct.pack("<HHIQQQIHHHHHH", e_type, machine, 1, entry, phoff, 0, 0, 64, 56, len(segs), 64, 0, 0)
    return ident + hdr + phdrs + body_prefix + blobs


def mb_header(flags: int = 0, aout: tuple[int, int, int, int, int] | None = None, checksum: int | None = None) -> bytes:
    """A multiboot header; `aout` = (header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr)."""
    if checksum is None:
        checksum = -(MB_MAGIC + flags) & 0xFFFFFFFF
    out = struct.pack("<III", MB_MAGIC, flags, checksum)
    if aout is not None:
        out += struct.pack("<5I", *aout)
    return out


def at_offset(offset: int, blob: bytes, total: int | None = None) -> bytes:
    """`blob` at `offset` in an otherwise zero file (of `total` bytes if given)."""
    data = bytes(offset) + blob
    return data if total is None else data.ljust(total, b"\0")


@dataclass
class Boot:
    mode: CpuMode
    entry: int
    stack: int | None
    regs: dict[str, int] | None
    area: BootArea | None = None


@dataclass
class FakeMachine:
    """What load_kernel uses of a Machine: real guest RAM (no KVM needed) and a recording boot()."""

    mem_size: int = 16 << 20
    memory: GuestMemory = field(default_factory=GuestMemory)
    boots: list[Boot] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.memory.add_ram(0, self.mem_size)

    def boot(
        self,
        mode: CpuMode,
        entry: int,
        *,
        stack: int | None = None,
        regs: dict[str, int] | None = None,
        area: BootArea | None = None,
    ) -> None:
        self.boots.append(Boot(mode, entry, stack, regs, area))

    def u32(self, gpa: int) -> int:
        return self.memory.read_u32(gpa)

    def cstring(self, gpa: int) -> str:
        return self.memory.read_cstring(gpa)


def fake_machine(mem_size: int = 16 << 20) -> Iterator[FakeMachine]:
    m = FakeMachine(mem_size)
    try:
        yield m
    finally:
        m.memory.close()


def gcc_build(tmp_path: Path, name: str, source: str, suffix: str, *flags: str) -> Path:
    """Compile `source` into a static, freestanding executable with its text at 1 MiB; skip when
    gcc is missing or cannot target the requested width on this host."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / f"{name}{suffix}"
    src.write_text(source)
    out = tmp_path / name
    # no PIE, no build-id note and no unwind tables: only the sections a kernel has, at 1 MiB
    cmd = [gcc, *flags, "-nostdlib", "-static", "-fno-pie", "-no-pie", "-ffreestanding"]
    cmd += ["-fno-asynchronous-unwind-tables", "-Wl,--build-id=none", "-Wl,-Ttext=0x100000", "-o", str(out), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"gcc {' '.join(flags)} cannot build here: {r.stderr.strip().splitlines()[-1:]}")
    return out


# --- the builders' own checks ------------------------------------------------------------------
@pytest.mark.parametrize("bits", [32, 64])
def test_built_elf_agrees_with_readelf(tmp_path: Path, bits: int) -> None:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf is not installed")
    p = tmp_path / "x.elf"
    p.write_bytes(elf(bits, [Seg(0x100000, b"\x90" * 16, 0x40), Seg(0x200000, b"ab", vaddr=0xC0200000)]))
    out = subprocess.run([readelf, "-hlW", str(p)], capture_output=True, text=True, check=True).stdout
    assert f"ELF{bits}" in out
    assert "Entry point address:               0x100000" in out
    loads = [line.split() for line in out.splitlines() if line.strip().startswith("LOAD")]
    assert [(int(f[3], 16), int(f[2], 16), int(f[4], 16), int(f[5], 16)) for f in loads] == [
        (0x100000, 0x100000, 0x10, 0x40),
        (0x200000, 0xC0200000, 0x2, 0x2),
    ]


def test_built_multiboot_header_sums_to_zero() -> None:
    magic, flags, checksum = struct.unpack("<III", mb_header(0x10003))
    assert (magic + flags + checksum) & 0xFFFFFFFF == 0
    assert len(mb_header(0x10000, (1, 2, 3, 4, 5))) == 32
