"""Exit views decode the kvm_run page as the kernel lays it out (no KVM needed): the run function
`Vcpu` builds with `make_run`, entered through a stand-in for the KVM_RUN ioctl that only sets
the exit reason."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import stand_in_run

from kvm_abi import exits as ke
from kvm_abi import ffi
from vmm.kvm.exits import Exit, IoExit, MmioExit, make_view


class Counting:
    exits = 0


def exit_of(run: Any, reason: int) -> Exit:
    """What a vCPU's run() returns when KVM_RUN leaves `run` as the test wrote it, with `reason`."""
    vcpu = Counting()
    views = [make_view(vcpu, run, r) for r in range(64)]  # type: ignore[arg-type]
    ex = stand_in_run(vcpu, run, views, lambda: reason)()
    assert vcpu.exits == 1
    return ex


def run_page() -> Any:
    page = ffi.new("char[]", 8192)
    return page, ffi.cast("struct kvm_run *", page)


@pytest.mark.parametrize(("size", "value"), [(1, 0xAB), (2, 0xBEEF), (4, 0xDEADBEEF)])
def test_io_view_reads_every_field_and_the_data(size: int, value: int) -> None:
    page, run = run_page()
    run.io.direction, run.io.size, run.io.port, run.io.count, run.io.data_offset = 1, size, 0x3FF, 1, 4096
    ffi.cast({1: "uint8_t *", 2: "uint16_t *", 4: "uint32_t *"}[size], page + 4096)[0] = value
    ex = exit_of(run, ke.KVM_EXIT_IO)
    assert isinstance(ex, IoExit)
    assert (ex.port, ex.size, ex.count, ex.is_write, ex.value) == (0x3FF, size, 1, True, value)


def test_io_view_follows_an_unusual_data_offset_and_writes_in_values() -> None:
    page, run = run_page()
    run.io.direction, run.io.size, run.io.port, run.io.count, run.io.data_offset = 0, 2, 0x60, 2, 512
    ex = exit_of(run, ke.KVM_EXIT_IO)
    assert isinstance(ex, IoExit)
    assert not ex.is_write and ex.count == 2
    ex.select(1)
    ex.value = 0x12345
    ex.store()  # truncated to the access size
    assert ffi.cast("uint16_t *", page + 512)[1] == 0x2345


def test_mmio_view() -> None:
    _, run = run_page()
    run.mmio.phys_addr, run.mmio.len, run.mmio.is_write = 0xD0000000, 4, 1
    ffi.memmove(run.mmio.data, b"\xef\xbe\xad\xde", 4)
    ex = exit_of(run, ke.KVM_EXIT_MMIO)
    assert isinstance(ex, MmioExit)
    assert (ex.address, ex.length, ex.is_write, ex.value) == (0xD0000000, 4, True, 0xDEADBEEF)


def test_mmio_read_view_hands_a_zeroed_buffer_of_the_access_length() -> None:
    _, run = run_page()
    run.mmio.phys_addr, run.mmio.len, run.mmio.is_write = 0xFEE00030, 2, 0
    ffi.memmove(run.mmio.data, b"\x11\x22\x33\x44\x55\x66\x77\x88", 8)  # stale bytes a read must not show
    ex = exit_of(run, ke.KVM_EXIT_MMIO)
    assert isinstance(ex, MmioExit)
    assert (ex.address, ex.length, ex.is_write, ex.data) == (0xFEE00030, 2, False, b"\0\0")


def test_an_in_exit_has_no_value_until_a_handler_gives_one() -> None:
    page, run = run_page()
    run.io.direction, run.io.size, run.io.port, run.io.count, run.io.data_offset = 0, 1, 0x3FD, 1, 4096
    page[4096] = b"\x7f"
    ex = exit_of(run, ke.KVM_EXIT_IO)
    assert isinstance(ex, IoExit)
    assert (ex.port, ex.is_write, ex.value) == (0x3FD, False, 0)


def test_other_reasons_get_their_own_views() -> None:
    _, run = run_page()
    assert exit_of(run, ke.KVM_EXIT_HLT).name == "HLT"
    assert exit_of(run, 200).reason == -1  # a reason no kernel defines: an Unknown view, made on demand
