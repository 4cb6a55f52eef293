"""Instructions, not seconds: the exit path and start-up counted under valgrind's callgrind.

An instruction count is the same from one run to the next whatever else the machine is doing, so
these ratios hold on a loaded 2-CPU runner where the wall and user times of the other groups
swing. Per-exit figures come from two runs of the same guest with different loop counts (patched
into the image), so start-up cancels out: (instructions of the long run - the short run) / (the
extra exits). The guest's own instructions run inside KVM and are not counted; the kernel's
KVM_RUN is not either, on both sides.

`python -m vmm.bench.instructions` (also `python -m vmm.bench --group 9`). Needs valgrind.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "guests" / "build"
SHORT, LONG = 1_000, 11_000  # loop counts of the two runs; the difference is what is counted

# (guest, its loop count as built)
GUESTS_BY_PATH = {"io": ("io-bench.bin", 200_000), "mmio": ("mmio-bench.bin", 100_000)}

# One exit path each, run in a child interpreter: the image is patched to `count` exits.
PATHS = {
    "raw-python-io": "io",
    "pyvmm-io": "io",
    "pyvmm-io-traced": "io",  # with --trace's recorder and writer thread
    "raw-python-mmio": "mmio",
    "pyvmm-spp-allowed": "mmio",
    "pyvmm-spp-denied": "mmio",
}

CHILD = """
import io, sys
from vmm.bench import inner
from vmm.cpu.modes import CpuMode
from vmm.machine import Machine
name, image, built, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = (inner.GUESTS / image).read_bytes()
needle = built.to_bytes(4, "little")
assert data.count(needle) == 1, "the loop count must occur once in the image"
def patched(*args, **kwargs):  # the variants build their machine here: the same guest, fewer exits
    m = Machine(1 << 20, console=io.BytesIO())
    m.load_flat(data.replace(needle, count.to_bytes(4, "little")), CpuMode.REAL)
    return m
inner._machine = patched
inner.VARIANTS[name]()
"""

_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(argv: list[str]) -> int:
    """Instructions callgrind counts for one run of `argv` (ours and the libraries', not the guest's)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"bench: {' '.join(argv)} under callgrind ended with status {proc.returncode}")
    return int(found.group(1))


def per_exit(name: str) -> float:
    image, built = GUESTS_BY_PATH[PATHS[name]]

    def run(count: int) -> int:
        return instructions([sys.executable, "-c", CHILD, name, image, str(built), str(count)])

    return (run(LONG) - run(SHORT)) / (LONG - SHORT)


def start_up() -> tuple[int, int]:
    guest = GUESTS / "hello-long.bin"
    base = instructions([sys.executable, "-c", "pass"])
    pyvmm = instructions([sys.executable, "-m", "vmm.cli", "run", "-q", str(guest)])
    return base, pyvmm


def report() -> None:
    if shutil.which("valgrind") is None:
        print("\ninstructions (callgrind): skipped, valgrind is not installed")
        return
    print("\ninstructions per exit (callgrind; the difference of two runs of 1,000 and 11,000 exits)")
    print(f"  {'variant':<26}{'instructions':>14}{'ratio':>10}")
    counts = {name: per_exit(name) for name in PATHS}
    for name, n in counts.items():
        ref = counts["raw-python-io" if PATHS[name] == "io" else "raw-python-mmio"]
        print(f"  {name:<26}{n:>14,.0f}{n / ref:>9.2f}x")
    print(f"  --trace adds {counts['pyvmm-io-traced'] - counts['pyvmm-io']:,.0f} instructions per port exit")
    base, pyvmm = start_up()
    print("\nstart-up instructions (callgrind; a whole process)")
    print(f"  {'python -c pass':<26}{base:>14,}{1:>9.2f}x")
    print(f"  {'pyvmm run -q hello-long':<26}{pyvmm:>14,}{pyvmm / base:>9.2f}x")


def main() -> int:
    argparse.ArgumentParser(prog="python -m vmm.bench.instructions", description=__doc__).parse_args()
    report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
