"""A machine run from a worker thread still times out and stops: the timeout is a timer there,
and the kick signal, installed when the machine was made, interrupts KVM_RUN."""

from __future__ import annotations

import io
import threading
import time

import pytest
from conftest import guest

from vmm.errors import ExitStatus
from vmm.machine import Machine, RunResult

pytestmark = pytest.mark.kvm


def run_in_thread(m: Machine, **kw: float) -> tuple[RunResult, float]:
    out: list[RunResult] = []
    t0 = time.monotonic()
    worker = threading.Thread(target=lambda: out.append(m.run(**kw)))
    worker.start()
    return_after = 10.0
    worker.join(return_after)
    assert not worker.is_alive(), f"run() on a worker thread did not return within {return_after} s"
    return out[0], time.monotonic() - t0


def test_timeout_on_a_worker_thread() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hang").read_bytes())
        result, elapsed = run_in_thread(m, timeout=0.5)
    assert result.status == ExitStatus.TIMEOUT
    assert elapsed < 3


def test_stop_from_the_main_thread_reaches_a_worker_run() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("hang").read_bytes())
        threading.Timer(0.3, m.stop, (7, "stopped from outside")).start()
        result, elapsed = run_in_thread(m)
    assert (result.status, result.reason) == (7, "stopped from outside")
    assert elapsed < 3
