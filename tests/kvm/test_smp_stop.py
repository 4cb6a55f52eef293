"""With several vCPUs, every way a run ends stops all of them promptly and joins their threads;
a fatal exit names the vCPU it happened on."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from conftest import guest, interrupt_running

from vmm.errors import ExitStatus
from vmm.kvm.exits import IoExit
from vmm.loaders import load_kernel
from vmm.machine import Machine
from vmm.verdict import Verdict

pytestmark = pytest.mark.kvm

MB_SMP = Path(guest("hello-long")).parent / "mb" / "mb-smp.elf"


def vcpu_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pyvmm-vcpu")]


def smp_kernel_machine(ncpus: int = 4) -> Machine:
    m = Machine(128 << 20, smp=ncpus, console=io.BytesIO(), log=io.StringIO(), platform="pc")
    load_kernel(m, MB_SMP.read_bytes(), str(MB_SMP))
    return m


def test_timeout_stops_every_vcpu() -> None:
    # With the irqchip, the boot CPU's hlt waits in the kernel and the APs wait for SIPI: only
    # the timeout can end this run.
    with Machine(smp=4, console=io.BytesIO()) as m:
        m.load_flat(guest("hello-long").read_bytes())
        t0 = time.monotonic()
        result = m.run(timeout=0.5)
        elapsed = time.monotonic() - t0
    assert result.status == ExitStatus.TIMEOUT
    assert elapsed < 3
    assert vcpu_threads() == []


def test_a_handler_failing_on_one_ap_names_it_and_stops_all() -> None:
    with smp_kernel_machine() as m:
        uart = m.uart.handle_io

        def failing_on_cpu2(ex: IoExit) -> Verdict:
            if ex.vcpu.index == 2:
                raise RuntimeError("handler bug seen on vCPU 2")
            uart(ex)
            return None

        m.on_io(0x3F8, 8, failing_on_cpu2, replace=True)
        result = m.run(timeout=20)
    assert result.status == ExitStatus.HANDLER_ERROR
    assert result.reason.startswith("vCPU 2: ")
    assert "handler bug seen on vCPU 2" in result.report
    assert "vCPU 2: rip=" in result.report  # the guest state of the vCPU that failed
    assert vcpu_threads() == []


def test_the_guest_exit_on_the_boot_cpu_ends_the_run_with_aps_started() -> None:
    with smp_kernel_machine() as m:
        result = m.run(timeout=20)
        text = m.console.transcript.decode()
    assert result.status == (0x14 << 1) | 1
    assert all(f"cpu {i} up (apic id {i})" in text for i in range(4))
    assert vcpu_threads() == []


def test_ctrl_c_stops_an_smp_guest() -> None:
    proc, elapsed = interrupt_running(["run", str(guest("hello-long")), "-smp", "4"], settle=0.5)
    assert proc.returncode == ExitStatus.INTERRUPTED
    assert elapsed < 5
    assert "Traceback" not in proc.stderr.decode()
