"""Running x86 store instructions on the real CPU (the helper in x86_cpu_helper.c) and the small
pieces the vmm.x86 tests share: building states, applying an emulated effect to a buffer."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from vmm.x86 import CpuState, MemoryWrite, StoreEffect, decode, emulate_store
from vmm.x86.results import EmulationResult

SOURCE = Path(__file__).with_name("x86_cpu_helper.c")
BASE = 0x7F00_0000_0000  # where the tests place the helper's buffer in the emulated address space
_binary: Path | None = None
_REQUIRED_FLAGS = ("sse4_1", "avx", "avx2", "xsave", "xsaveopt", "xsavec", "cx16")


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def helper() -> Path:
    """The compiled helper (built once per test run); skips when it cannot be built or run."""
    global _binary
    if _binary is not None:
        return _binary
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the native comparison helper cannot be built")
    missing = [f for f in _REQUIRED_FLAGS if f not in _cpu_flags()]
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}")
    # No PIE: the compatibility-mode requests need code and data below 4 GiB.
    flags = ["-std=gnu11", "-O0", "-Wall", "-no-pie", "-fno-pie"]
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"pyvmm-x86-helper-{digest}"
    if not binary.exists():
        partial = binary.with_suffix(f".{os.getpid()}.part")
        command = [gcc, *flags, "-o", str(partial), str(SOURCE)]
        build = subprocess.run(command, capture_output=True, text=True)
        assert build.returncode == 0, build.stderr
        partial.rename(binary)
    _binary = binary
    return binary


def run(requests: list[str]) -> list[list[str]]:
    """One answer (its whitespace-separated fields) per request line."""
    result = subprocess.run(
        [str(helper())], input="".join(r + "\n" for r in requests), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(requests)
    return [line.split() for line in lines]


def emulate_hex(code_hex: str, state: CpuState, memory: bytes | None = None) -> EmulationResult:
    """Decode and emulate the instruction the helper printed; `memory` backs reads at BASE."""
    insn = decode(bytes.fromhex(code_hex), state)
    assert insn is not None, code_hex
    assert insn.length * 2 == len(code_hex), "the helper's instruction decodes to a different length"

    def read(linear: int, size: int) -> bytes:
        assert memory is not None
        offset = linear - BASE
        return memory[offset : offset + size]

    return emulate_store(insn, state, read)


def apply(writes: tuple[MemoryWrite, ...], size: int, fill: int = 0xAA, base: int = BASE) -> bytes:
    """A `size`-byte buffer at `base` filled with `fill`, after the writes."""
    buffer = bytearray([fill]) * size
    for w in writes:
        offset = w.linear - base
        assert offset >= 0 and offset + len(w.data) <= size, f"write at {w.linear:#x} leaves the buffer"
        buffer[offset : offset + len(w.data)] = w.data
    return bytes(buffer)


def effect(result: EmulationResult) -> StoreEffect:
    assert isinstance(result, StoreEffect), result
    return result
