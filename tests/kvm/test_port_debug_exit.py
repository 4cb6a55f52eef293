"""The isa-debug-exit port at 0xf4: writing v ends the run with status (v << 1) | 1."""

from __future__ import annotations

import io

import pytest
from conftest import guest, pyvmm

from kvm_abi import ffi
from kvm_abi.constants import KVM_PIO_PAGE_OFFSET
from vmm import layout as L
from vmm.cpu.modes import CpuMode
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.kvm.exits import IoExit
from vmm.machine import Machine
from vmm.verdict import Stop

pytestmark = pytest.mark.kvm

PAGE = 4096


def io_exit(port: int, size: int, write: bool, value: int = 0) -> tuple[IoExit, object]:
    """An IoExit over a host-allocated kvm_run layout, for driving a device without a guest.

    Returns the buffer too: the view points into it, so it must outlive the view."""
    buf = ffi.new("char[]", (KVM_PIO_PAGE_OFFSET + 1) * PAGE)
    run = ffi.cast("struct kvm_run *", buf)
    run.io.direction = 1 if write else 0
    run.io.size = size
    run.io.port = port
    run.io.count = 1
    run.io.data_offset = KVM_PIO_PAGE_OFFSET * PAGE
    ex = IoExit(None, run)  # type: ignore[arg-type]  # no vCPU: the device only reads the port data
    ex.load()
    ex.value = value
    return ex, buf


@pytest.mark.parametrize("v", [0, 1, 0x10, 21, 0x7F])
def test_written_value_becomes_the_status(v: int) -> None:
    ex, _buf = io_exit(L.DEBUG_EXIT_PORT, 4, write=True, value=v)
    verdict = IsaDebugExit().handle_io(ex)
    assert isinstance(verdict, Stop)
    assert verdict.status == (v << 1) | 1
    assert not verdict.fatal  # the guest chose to stop: no state dump


def test_read_returns_all_ones_and_does_not_stop() -> None:
    ex, _buf = io_exit(L.DEBUG_EXIT_PORT, 4, write=False)
    assert IsaDebugExit().handle_io(ex) is None
    assert ex.value == 0xFFFFFFFF


def test_exit_code_guest_gets_status_43() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("exit-code").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=5)
    assert result.status == 43
    assert "0x15" in result.reason  # debug_exit(21)


def test_exit_code_guest_status_is_the_process_status() -> None:
    proc = pyvmm("run", str(guest("exit-code")))
    assert proc.returncode == 43
    assert b"Traceback" not in proc.stderr
