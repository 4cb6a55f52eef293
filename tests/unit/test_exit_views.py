"""Exit views decode the kvm_run page as the kernel lays it out (no KVM needed)."""

from __future__ import annotations

from typing import Any

import pytest

from kvm_abi import ffi
from vmm.kvm.exits import IoExit, MmioExit


def run_page() -> Any:
    page = ffi.new("char[]", 8192)
    return page, ffi.cast("struct kvm_run *", page)


@pytest.mark.parametrize(("size", "value"), [(1, 0xAB), (2, 0xBEEF), (4, 0xDEADBEEF)])
def test_io_view_reads_every_field_and_the_data(size: int, value: int) -> None:
    page, run = run_page()
    run.io.direction, run.io.size, run.io.port, run.io.count, run.io.data_offset = 1, size, 0x3FF, 1, 4096
    ffi.cast({1: "uint8_t *", 2: "uint16_t *", 4: "uint32_t *"}[size], page + 4096)[0] = value
    ex = IoExit(None, run)  # type: ignore[arg-type]
    ex.load()
    assert (ex.port, ex.size, ex.count, ex.is_write, ex.value) == (0x3FF, size, 1, True, value)


def test_io_view_follows_an_unusual_data_offset_and_writes_in_values() -> None:
    page, run = run_page()
    run.io.direction, run.io.size, run.io.port, run.io.count, run.io.data_offset = 0, 2, 0x60, 2, 512
    ex = IoExit(None, run)  # type: ignore[arg-type]
    ex.load()
    assert not ex.is_write and ex.count == 2
    ex.select(1)
    ex.value = 0x12345
    ex.store()  # truncated to the access size
    assert ffi.cast("uint16_t *", page + 512)[1] == 0x2345


def test_mmio_view() -> None:
    _, run = run_page()
    run.mmio.phys_addr, run.mmio.len, run.mmio.is_write = 0xD0000000, 4, 1
    ffi.memmove(run.mmio.data, b"\xef\xbe\xad\xde", 4)
    ex = MmioExit(None, run)  # type: ignore[arg-type]
    ex.load()
    assert (ex.address, ex.length, ex.is_write, ex.value) == (0xD0000000, 4, True, 0xDEADBEEF)
