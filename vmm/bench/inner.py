"""One benchmark variant, run in its own process; prints one JSON line with its loop timings."""

from __future__ import annotations

import io
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IO_BENCH = ROOT / "guests" / "build" / "io-bench.bin"


def _timed(fn: Callable[[], int]) -> dict[str, float]:
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    exits = fn()
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    return {"exits": exits, "wall_s": t1 - t0, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime}


def pyvmm_io() -> dict[str, float]:
    """The full path: Machine.run, the dispatcher, and the UART device's scratch register."""
    from vmm.machine import Machine
    from vmm.modes import CpuMode

    m = Machine(1 << 20, console=io.BytesIO())
    m.load_flat(IO_BENCH.read_bytes(), CpuMode.REAL)

    def go() -> int:
        result = m.run()
        assert result.status == 1, result
        return result.exits

    return _timed(go)


def raw_python_io() -> dict[str, float]:
    """The floor for Python: KVM_RUN in a bare loop through the same cffi declaration."""
    from kvm_abi import ffi, ioctls, libc
    from vmm.machine import Machine
    from vmm.modes import CpuMode

    m = Machine(1 << 20, console=io.BytesIO())
    m.load_flat(IO_BENCH.read_bytes(), CpuMode.REAL)
    run = m.vcpu.kvm_run
    fd, req, ioctl, nullp = m.vcpu.fd, ioctls.KVM_RUN, libc.ioctl, ffi.NULL

    def go() -> int:
        n = 0
        iop = run.io
        while True:
            ioctl(fd, req, nullp)
            n += 1
            if run.exit_reason != 2 or iop.port == 0xF4:
                return n

    return _timed(go)


VARIANTS: dict[str, Callable[[], dict[str, float]]] = {"pyvmm-io": pyvmm_io, "raw-python-io": raw_python_io}

if __name__ == "__main__":
    print(json.dumps(VARIANTS[sys.argv[1]]()))
