"""QEMU with KVM on io-bench, as a point of comparison for the port-I/O group; prints one JSON line.

    python -m vmm.bench.qemu guests/build/io-bench.bin

QEMU has no way to start a real-mode flat image directly: it boots through its firmware (SeaBIOS),
and that firmware is slow here, since much of it runs through KVM's instruction emulator. So the
guest is booted as a disk's boot sector, and its per-exit cost is measured by difference: the same
boot with the loop count patched to 1 takes all the firmware and start-up time and only two exits,
and subtracting it from the real run leaves the cost of the extra OUTs alone. Each pair is run
several times and the median difference is reported, since a whole run also carries seconds of
firmware time whose noise would otherwise swamp the result.

QEMU is not a dependency of the project: `python -m vmm.bench` runs this only when
qemu-system-x86_64 is on PATH.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"

# io-bench's loop count (IO_BENCH_COUNT in guests/io-bench.S), as the 32-bit immediate of its
# `movl $IO_BENCH_COUNT, %ecx`; the baseline image gets 1 there instead.
LOOP_COUNT = 200_000

SECTOR = 512
BOOT_SIGNATURE = b"\x55\xaa"  # the last two bytes of a sector the BIOS agrees to boot

# A write of v to this port makes QEMU exit with status (v << 1) | 1; io-bench writes 0 when done,
# at the same port pyvmm's debug-exit device uses (DEBUG_EXIT_PORT in guests/lib/machine.h).
DEBUG_EXIT = "isa-debug-exit,iobase=0xf4,iosize=4"
EXPECTED_STATUS = 1


class BenchError(Exception):
    """A failure to report on one line instead of a traceback."""


def boot_sector(image: bytes, loops: int) -> bytes:
    """The image as a bootable sector with its loop count set to `loops`.

    A BIOS loads a boot sector at 0000:7c00 and jumps to its first byte, which is where pyvmm loads
    and enters real-mode images (guests/real.ld), so the code runs unchanged.
    """
    if len(image) > SECTOR - len(BOOT_SIGNATURE):
        raise BenchError(f"the image is {len(image)} bytes; a boot sector holds {SECTOR - len(BOOT_SIGNATURE)}")
    needle = LOOP_COUNT.to_bytes(4, "little")
    found = image.count(needle)
    if found != 1:
        # Patching a byte pattern is only safe when it identifies the instruction unambiguously.
        raise BenchError(f"expected the loop count {LOOP_COUNT:#010x} once in the image, found it {found} times")
    code = image.replace(needle, loops.to_bytes(4, "little"))
    return code.ljust(SECTOR - len(BOOT_SIGNATURE), b"\0") + BOOT_SIGNATURE


def qemu_command(qemu: str, disk: Path) -> list[str]:
    return [
        qemu,
        "-accel", "kvm",
        # i440fx with an IDE disk: the combination SeaBIOS boots from promptly here (a floppy, or
        # q35's AHCI, left it probing for minutes).
        "-machine", "pc",
        "-m", "16",
        # No default devices, config files, window or monitor, so nothing waits on a terminal.
        "-nodefaults", "-no-user-config",
        "-display", "none", "-parallel", "none", "-monitor", "none",
        # A 16550 at COM1 whose output goes nowhere: io-bench's OUTs then reach a UART's scratch
        # register, as they do under pyvmm, rather than an unassigned port.
        "-serial", "null",
        "-no-reboot",  # a guest that resets instead of exiting ends the run rather than looping
        "-device", DEBUG_EXIT,
        "-drive", f"file={disk},format=raw,if=ide",
        "-boot", "order=c",
    ]  # fmt: skip


def run_once(cmd: list[str], timeout: float) -> tuple[float, float, float]:
    """Wall time, user CPU and system CPU of one QEMU run, start-up and firmware included."""
    with tempfile.TemporaryFile() as err:
        # The children's rusage only grows when a child is reaped, so the delta around one wait is
        # exactly that QEMU's CPU time, all of its threads included.
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError(f"QEMU did not finish within {timeout:g} s") from None
        t1 = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if status != EXPECTED_STATUS:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            detail = f": {lines[-1]}" if lines else ""
            raise BenchError(f"QEMU exited with status {status}, not {EXPECTED_STATUS}{detail}")
    return t1 - t0, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime


def measure(image: bytes, qemu: str, pairs: int, timeout: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pyvmm-qemu-") as tmp:
        full, base = Path(tmp) / "full.img", Path(tmp) / "base.img"
        full.write_bytes(boot_sector(image, LOOP_COUNT))
        base.write_bytes(boot_sector(image, 1))
        diffs: list[tuple[float, float, float]] = []
        boots: list[float] = []
        for _ in range(pairs):
            # Differences are taken within a pair, run back to back, so slow drift in the
            # machine's load cancels along with the firmware time.
            b = run_once(qemu_command(qemu, base), timeout)
            f = run_once(qemu_command(qemu, full), timeout)
            diffs.append((f[0] - b[0], f[1] - b[1], f[2] - b[2]))
            boots.append(b[0])
    wall, user, sys_ = (statistics.median(d[i] for d in diffs) for i in range(3))
    if wall <= 0:
        raise BenchError(f"the full run was not slower than the 1-loop run ({wall * 1e3:+.1f} ms): too noisy")
    return {
        # Both runs make the final debug-exit write, and the 1-loop run one OUT: the difference in
        # time is that of LOOP_COUNT - 1 exits.
        "exits": LOOP_COUNT - 1,
        "wall_s": wall,
        "user_s": user,
        "sys_s": sys_,
        # Everything but the loop (QEMU start-up, SeaBIOS, two exits), for context.
        "boot_wall_s": statistics.median(boots),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vmm.bench.qemu", description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path, help="io-bench.bin (a flat real-mode image)")
    ap.add_argument("--pairs", type=int, default=3, help="runs of each image; the median difference is reported")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds allowed for one QEMU run")
    args = ap.parse_args(argv)
    try:
        if args.pairs < 1:
            raise BenchError("--pairs must be at least 1")
        qemu = shutil.which(QEMU)
        if qemu is None:
            raise BenchError(f"{QEMU} is not on PATH")
        try:
            image = args.image.read_bytes()
        except OSError as e:
            raise BenchError(f"cannot read {args.image}: {e.strerror}") from None
        result = measure(image, qemu, args.pairs, args.timeout)
    except (BenchError, OSError) as e:
        print(f"qemu bench: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
