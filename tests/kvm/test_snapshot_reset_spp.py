"""A fast reset after a run whose stores went into allowed SPP sub-pages: those stores never reach
KVM's dirty log (the page is a read-only slot; the monitor writes them), so the reset must learn of
them from the monitor's own record, whether the SPP engine wrote them or the run loop's store
index did. The mmio-bench guest stores 100,000 times into one byte of 0x9000 (last value 1)."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm import CpuMode, Machine

pytestmark = pytest.mark.kvm

TARGET = 0x9000
SUB1_DENIED = 0xFFFFFFFD  # the guest stores into sub-page 0, which stays allowed


def machine() -> Machine:
    m = Machine(1 << 20, console=io.BytesIO())
    m.load_flat(guest("mmio-bench").read_bytes(), CpuMode.REAL)
    m.enable_spp().protect(TARGET, SUB1_DENIED)
    return m


def test_a_plain_run_sends_the_allowed_stores_through_the_store_index() -> None:
    m = machine()
    result = m.run(timeout=30)
    assert result.status == 1 and result.exits == 100_001
    assert m.memory.read(TARGET, 1) == b"\x01"
    assert list(m.board.mmio.stores) == [TARGET >> 7]
    assert m.spp is not None and m.spp.events == []


def test_a_fast_reset_puts_back_a_page_only_allowed_spp_stores_changed() -> None:
    m = machine()
    snap = m.snapshot()
    for _ in range(3):
        m.reset(snap)  # the first reset restores whole and arms the tracking; the others are fast
        assert m.memory.read(TARGET, 1) == b"\x00"
        assert m.run(timeout=30).status == 1
        assert m.memory.read(TARGET, 1) == b"\x01"
    assert m.reset_seconds != (0.0, 0.0, 0.0)  # the last resets took the fast path (it times its parts)
