"""Snapshot figures (`python -m vmm.bench.snapshot`, group 5 of `make bench`):

- resets per second of a 128 MiB fuzz-parser guest whose input dirties 16 pages, with the time
  split into memory (dirty log and page copies), vCPU and VM state (the ioctls), and devices, and
  the number of ioctls one reset issues (each vCPU ioctl costs 7-10 us on the project's hosts);
  side by side with the dirty log in per-slot bitmaps (KVM_GET_DIRTY_LOG) and in KVM's dirty
  rings (KVM_CAP_DIRTY_LOG_RING), rounds of the two alternating;
- save to a file and load from it of a 128 MiB guest, in seconds, next to QEMU migrating a
  paused 128 MiB guest to a file (`migrate "exec:cat > FILE"`) and back (`-incoming "exec:cat
  FILE"`), when qemu-system-x86_64 is installed. Both guests' RAM is mostly zero pages, which
  both formats leave out; a second pyvmm row has all 128 MiB filled.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vmm import CpuMode, Machine
from vmm.devices.ucall import SYNC, Ucall
from vmm.kvm import calls

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "guests" / "build" / "fuzz-parser.bin"
MEM = 128 << 20
INPUT = b"".join(b"P" + bytes([n]) for n in range(16))  # one store into each of 16 scratch pages


class _CountingLibc:
    """Stands in for the libc object in `vmm.kvm.calls` to count the ioctls a reset issues."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.ioctls = 0

    def ioctl(self, *args: Any) -> Any:
        self.ioctls += 1
        return self.real.ioctl(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def fuzz_machine(dirty_ring: bool = False) -> tuple[Machine, Any, int]:
    m = Machine(MEM, console=io.BytesIO(), dirty_ring=dirty_ring)
    m.load_flat(IMAGE.read_bytes(), CpuMode.LONG)
    mailbox: list[int] = []

    def on_sync(call: Ucall) -> None:
        if call.args[0] == 0:
            mailbox.append(call.args[1])

    m.ucall.on(SYNC, on_sync)
    trigger = m.snapshot_at("sync:1")
    m.run(timeout=10)
    if not trigger.fired():
        raise SystemExit("bench: fuzz-parser did not reach its mailbox")
    return m, m.snapshot(), mailbox[0]


def measure_resets(count: int, dirty_ring: bool = False) -> dict[str, float]:
    m, snap, mailbox = fuzz_machine(dirty_ring)
    m.reset(snap)  # the first reset copies all of RAM and arms the dirty log
    total = mem = cpu = dev = 0.0
    dirty = 0
    real = getattr(calls, "libc")  # noqa: B009 - the module global the ioctl wrappers look up
    counting = _CountingLibc(real)
    for i in range(count):
        m.memory.write(mailbox, len(INPUT).to_bytes(4, "little") + INPUT)
        m.run(timeout=5)
        if i == count - 1:
            setattr(calls, "libc", counting)  # noqa: B010
        t0 = time.perf_counter()
        m.reset(snap)
        total += time.perf_counter() - t0
        setattr(calls, "libc", real)  # noqa: B010
        a, b, c = m.reset_seconds
        mem, cpu, dev = mem + a, cpu + b, dev + c
    tracker = m._dirty
    assert tracker is not None
    m.memory.write(mailbox, len(INPUT).to_bytes(4, "little") + INPUT)
    m.run(timeout=5)
    dirty = len(tracker.take())
    m.reset(snap)
    m.close()
    # the vCPU's own KVM_RUN (immediate exit) in the reset bypasses `calls`: one per vCPU
    return {"per_s": count / total, "total_us": total / count * 1e6, "mem_us": mem / count * 1e6,
            "cpu_us": cpu / count * 1e6, "dev_us": dev / count * 1e6, "ioctls": counting.ioctls + len(m.vcpus),
            "dirty": dirty}  # fmt: skip


def measure_file(filled: bool) -> tuple[float, float, int]:
    m, snap, _ = fuzz_machine()
    if filled:
        pattern = bytes(range(1, 256)) * 16
        for gpa in range(0x200000, MEM, len(pattern)):
            m.memory.write(gpa, pattern[: min(len(pattern), MEM - gpa)])
        snap = m.snapshot()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "guest.snap")
        t0 = time.perf_counter()
        m.snapshot().save(path)
        save = time.perf_counter() - t0
        size = os.path.getsize(path)
        m.close()
        t0 = time.perf_counter()
        Machine.from_snapshot(path, console=io.BytesIO()).close()
        load = time.perf_counter() - t0
    del snap
    return save, load, size


def _qemu(qemu: str, extra: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [qemu, "-accel", "kvm", "-machine", "pc", "-m", "128", "-nodefaults", "-display", "none", "-S",
         "-monitor", "stdio", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
    )  # fmt: skip


def _hmp(proc: subprocess.Popen[str], command: str) -> str:
    """Send one monitor command and return its output (up to the next prompt)."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    out = ""
    while not out.endswith("(qemu) "):
        ch = proc.stdout.read(1)
        if not ch:
            break
        out += ch
    return out


def _wait_prompt(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    out = ""
    while not out.endswith("(qemu) "):
        ch = proc.stdout.read(1)
        if not ch:
            raise SystemExit("bench: QEMU's monitor did not start")
        out += ch


def measure_qemu(qemu: str) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "guest.mig")
        proc = _qemu(qemu, [])
        _wait_prompt(proc)
        t0 = time.perf_counter()
        _hmp(proc, f'migrate "exec:cat > {path}"')  # HMP's migrate waits for the end
        while "Migration status: completed" not in _hmp(proc, "info migrate"):
            time.sleep(0.002)
        save = time.perf_counter() - t0
        _hmp(proc, "quit")
        proc.wait(timeout=30)
        size = os.path.getsize(path)
        proc = _qemu(qemu, ["-incoming", f"exec:cat {path}"])
        t0 = time.perf_counter()
        _wait_prompt(proc)
        while "inmigrate" in _hmp(proc, "info status"):
            time.sleep(0.002)
        load = time.perf_counter() - t0
        _hmp(proc, "quit")
        proc.wait(timeout=30)
    return save, load, size


def report(rounds: int, resets: int = 2000) -> None:
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(rounds):
        for with_ring in (False, True):
            runs[with_ring].append(measure_resets(resets, with_ring))
    med = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in runs.items()}
    bitmap, ring = med[False], med[True]
    print(f"\nfast reset (fuzz-parser, 128 MiB, input dirtying 16 pages; {resets} resets per round)")
    print(f"  {'':<22}{'dirty bitmap':>14}{'dirty ring':>14}")
    print(f"  {'resets per second':<22}{bitmap['per_s']:>14.0f}{ring['per_s']:>14.0f}   (target 2000/s; "
          f"ring/bitmap {ring['per_s'] / bitmap['per_s']:.2f})")  # fmt: skip
    rows = (("µs per reset", "total_us"), ("  memory", "mem_us"), ("  vCPU and VM state", "cpu_us"),
            ("  devices", "dev_us"))  # fmt: skip
    for name, key in rows:
        print(f"  {name:<22}{bitmap[key]:>11.1f} µs{ring[key]:>11.1f} µs")
    for figures in (bitmap, ring):
        figures["rest_us"] = figures["total_us"] - figures["mem_us"] - figures["cpu_us"] - figures["dev_us"]
    print(f"  {'  the rest':<22}{bitmap['rest_us']:>11.1f} µs{ring['rest_us']:>11.1f} µs   (finishing the last "
          "exit's instruction, checks)")  # fmt: skip
    print(f"  {'ioctls per reset':<22}{int(bitmap['ioctls']):>14}{int(ring['ioctls']):>14}")
    print(f"  {'pages copied back':<22}{int(bitmap['dirty']):>14}{int(ring['dirty']):>14}")
    print("\nsnapshot to a file and back, 128 MiB guest")
    print(f"  {'variant':<34}{'save':>9}{'load':>9}{'file':>12}")
    for name, filled in (("pyvmm, guest RAM mostly zero", False), ("pyvmm, all 128 MiB filled", True)):
        s, ld, size = (statistics.median(x) for x in zip(*(measure_file(filled) for _ in range(rounds)), strict=True))
        print(f"  {name:<34}{s:>8.3f}s{ld:>8.3f}s{size / 1e6:>10.1f}MB")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        print("  (qemu-system-x86_64 is not installed: no QEMU row)")
        return
    s, ld, size = (statistics.median(x) for x in zip(*(measure_qemu(qemu) for _ in range(rounds)), strict=True))
    print(f"  {'QEMU migrate to a file, paused':<34}{s:>8.3f}s{ld:>8.3f}s{size / 1e6:>10.1f}MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vmm.bench.snapshot")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--resets", type=int, default=2000)
    args = ap.parse_args(argv)
    if not IMAGE.exists():
        raise SystemExit(f"bench: {IMAGE} is missing: run `make guests`")
    report(args.rounds, args.resets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
