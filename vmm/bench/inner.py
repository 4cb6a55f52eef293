"""One benchmark variant, run in its own process; prints one JSON line with its loop timings."""

from __future__ import annotations

import io
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "build"
MMIO_TARGET = 0x9000  # the page mmio-bench writes to


def _timed(fn: Callable[[], int]) -> dict[str, float]:
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    exits = fn()
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    return {"exits": exits, "wall_s": t1 - t0, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime}


def _machine(image: str, mem: int = 1 << 20, long_mode: bool = False) -> Any:
    from vmm.cpu.modes import CpuMode
    from vmm.machine import Machine

    m = Machine(mem, console=io.BytesIO())
    m.load_flat((GUESTS / image).read_bytes(), CpuMode.LONG if long_mode else CpuMode.REAL)
    return m


def _run_machine(m: Any, status: int) -> dict[str, float]:
    def go() -> int:
        result = m.run()
        assert result.status == status, result
        return int(result.exits)

    return _timed(go)


def pyvmm_io() -> dict[str, float]:
    """The full path: Machine.run, the dispatcher, and the UART device's scratch register."""
    return _run_machine(_machine("io-bench.bin"), 1)


def pyvmm_io_traced() -> dict[str, float]:
    """The same with `--trace`'s recorder and writer thread, to /dev/null: what tracing adds."""
    import os

    from vmm.runner.trace import ExitTrace

    m = _machine("io-bench.bin")
    m.trace = ExitTrace(os.open(os.devnull, os.O_WRONLY))
    return _run_machine(m, 1)  # the run's end writes what the writer still holds


def _raw_loop(m: Any, done: Callable[[Any], bool]) -> dict[str, float]:
    """The floor for Python: KVM_RUN in a bare loop through the same cffi declaration."""
    from kvm_abi import ffi, ioctls, libc

    run = m.vcpu.kvm_run
    fd, req, ioctl, null = m.vcpu.fd, ioctls.KVM_RUN, libc.ioctl, ffi.NULL

    def go() -> int:
        n = 0
        while True:
            ioctl(fd, req, null)
            n += 1
            if done(run):
                return n

    return _timed(go)


def raw_python_io() -> dict[str, float]:
    return _raw_loop(_machine("io-bench.bin"), lambda run: run.exit_reason != 2 or run.io.port == 0xF4)


def raw_python_mmio() -> dict[str, float]:
    """Bare loop over the same read-only-slot exits the SPP engine sees, applying each write."""
    from kvm_abi import ffi

    m = _machine("mmio-bench.bin")
    m.enable_spp().protect(MMIO_TARGET, 0xFFFFFFFF & ~2)  # sets up the read-only slot
    host = m.memory.host_address(0)

    def done(run: Any) -> bool:
        if run.exit_reason == 6:
            mm = run.mmio
            ffi.memmove(ffi.cast("char *", host + mm.phys_addr), mm.data, mm.len)
            return False
        return True

    return _raw_loop(m, done)


def pyvmm_spp_allowed() -> dict[str, float]:
    """Trapped writes into an allowed sub-page of a protected page: judged, then applied."""
    m = _machine("mmio-bench.bin")
    m.enable_spp().protect(MMIO_TARGET, 0xFFFFFFFF & ~2)  # sub-page 0 allowed, 1 denied
    return _run_machine(m, 1)


def pyvmm_spp_denied() -> dict[str, float]:
    """Trapped writes into a denied sub-page: judged, an event made, the default policy denies."""
    m = _machine("mmio-bench.bin")
    m.enable_spp().protect(MMIO_TARGET, 0)
    return _run_machine(m, 1)


def _watched(offset: int) -> dict[str, float]:
    m = _machine("mmio-bench.bin")
    hits = [0]

    def changed(event: Any) -> None:
        hits[0] += 1

    m.watch(MMIO_TARGET + offset, 1, "w", changed)
    result = _run_machine(m, 1)
    assert hits[0] == (100_000 if offset == 0 else 0), hits
    return result


def pyvmm_watch_hit() -> dict[str, float]:
    """A write watchpoint on the byte mmio-bench stores into: every store calls the handler."""
    return _watched(0)


def pyvmm_watch_neighbour() -> dict[str, float]:
    """A watchpoint on another byte of the same sub-page: every store is trapped, none calls."""
    return _watched(8)


def user_loop_plain() -> dict[str, float]:
    """An unprotected CPL-3 workload (10 M loop iterations) ..."""
    return _run_machine(_machine("user-loop.bin", 16 << 20, long_mode=True), 33)


def user_loop_spp_elsewhere() -> dict[str, float]:
    """... and the same with 64 SPP-protected pages elsewhere in RAM: must cost the same."""
    m = _machine("user-loop.bin", 16 << 20, long_mode=True)
    spp = m.enable_spp()
    for i in range(64):
        spp.protect(0x800000 + i * 0x2000, 0x0F0F0F0F)
    return _run_machine(m, 33)


MSR_BENCH_INDEX = 0x174  # the MSR msr-bench reads (SYSENTER_CS)
MSR_ELSEWHERE = 0xC0000082  # LSTAR: filtered, never touched by msr-bench


def pyvmm_msr() -> dict[str, float]:
    """100,000 RDMSRs sent to a Python handler through the MSR filter, answered with a constant."""
    m = _machine("msr-bench.bin")
    m.on_msr(MSR_BENCH_INDEX, lambda access: 0x8, writes=False)
    return _run_machine(m, 1)


def msr_kernel() -> dict[str, float]:
    """The same RDMSRs answered inside KVM, no filter set ..."""
    return _run_machine(_machine("msr-bench.bin"), 1)


def msr_kernel_filter_elsewhere() -> dict[str, float]:
    """... and with the filter set for another MSR: the RDMSRs must stay in the kernel, as fast."""
    m = _machine("msr-bench.bin")
    m.on_msr(MSR_ELSEWHERE, lambda access: None)
    return _run_machine(m, 1)


SPP_TARGET = 0x300000  # spp-stores leaves 0x200000-0x3fffff to the host
STORE64_OP, MOVQ_XMM_OP, LOCK_ADD32_LOOP_OP = 4, 11, 33  # spp-stores ops (guests/README.md)
STORE_BATCHES, STORE_BATCH = 40, 128


class _AlwaysStale(dict[int, int]):
    """The software engine's per-vCPU record of trapped writes seen, made to never match: every
    locked write is then carried out again, as when other vCPUs write the page all the time."""

    def get(self, key: int, default: Any = None) -> Any:
        return -1


def _spp_stores(op: int, *, loop: bool = False, always_redo: bool = False) -> dict[str, float]:
    """40 batches of 128 CPL-3 stores of `op` into an allowed sub-page of a protected page, fed
    through the spp-stores mailbox (a loop op: one op of count 128 per batch); the figure is per
    store (the 41 syncs are counted in)."""
    import struct

    from vmm.devices.ucall import SYNC

    m = _machine("spp-stores.bin", 16 << 20, long_mode=True)
    spp = m.enable_spp()
    spp.protect(SPP_TARGET, 0xFFFFFFFE)  # sub-page 0 denied, the stores go to sub-page 2
    if always_redo:
        spp.backend.atomic.seen = _AlwaysStale()
        # with one vCPU the engine skips the lock and the check altogether: as if there were more
        spp.backend._alone = False
    state = {"mailbox": 0, "done": 0}

    def sync(call: Any) -> None:
        if call.args[0] == 0:
            state["mailbox"] = call.args[1]
            m.memory.write_u32(state["mailbox"] + 4, 3)
        else:
            state["done"] += 1
        n = STORE_BATCH if state["done"] < STORE_BATCHES else 0
        ops, count = (min(n, 1), n) if loop else (n, 0)
        for i in range(ops):
            m.memory.write(state["mailbox"] + 16 + 32 * i, struct.pack("<IIQQQ", op, count, SPP_TARGET + 0x100, 7, 0))
        m.memory.write_u32(state["mailbox"], ops)

    m.ucall.on(SYNC, sync)

    def go() -> int:
        result = m.run(timeout=120)
        assert result.status == 0, result
        return STORE_BATCHES * STORE_BATCH

    return _timed(go)


def spp_plain_store() -> dict[str, float]:
    return _spp_stores(STORE64_OP)


def spp_decoded_store() -> dict[str, float]:
    return _spp_stores(MOVQ_XMM_OP)


def spp_locked_add() -> dict[str, float]:
    return _spp_stores(LOCK_ADD32_LOOP_OP, loop=True)


def spp_locked_add_redone() -> dict[str, float]:
    return _spp_stores(LOCK_ADD32_LOOP_OP, loop=True, always_redo=True)


VARIANTS: dict[str, Callable[[], dict[str, float]]] = {
    "pyvmm-io": pyvmm_io,
    "pyvmm-io-traced": pyvmm_io_traced,
    "raw-python-io": raw_python_io,
    "raw-python-mmio": raw_python_mmio,
    "pyvmm-spp-allowed": pyvmm_spp_allowed,
    "pyvmm-spp-denied": pyvmm_spp_denied,
    "user-loop": user_loop_plain,
    "user-loop-spp-elsewhere": user_loop_spp_elsewhere,
    "pyvmm-msr": pyvmm_msr,
    "msr-kernel": msr_kernel,
    "msr-kernel-filter-elsewhere": msr_kernel_filter_elsewhere,
    "spp-plain-store": spp_plain_store,
    "spp-decoded-store": spp_decoded_store,
    "pyvmm-watch-hit": pyvmm_watch_hit,
    "pyvmm-watch-neighbour": pyvmm_watch_neighbour,
    "spp-locked-add": spp_locked_add,
    "spp-locked-add-redone": spp_locked_add_redone,
}

if __name__ == "__main__":
    print(json.dumps(VARIANTS[sys.argv[1]]()))
