"""Snapshot fuzzing from Python: feed the fuzz-parser guest (guests/fuzz-parser.c) many inputs,
putting the VM back to one snapshot after each, and report the inputs that crash it (an exception
its trap library reports: status 245) or write into the SPP-protected half of its table page.

    .venv/bin/python examples/fuzz_parser.py [--inputs N] [--seed S]

The snapshot is taken at the guest's SYNC stage 0, when it has announced its input mailbox and
not yet read it; `m.reset(snap)` then copies back only the pages the last input dirtied.
"""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
import time
from pathlib import Path

from vmm import CpuMode, Machine
from vmm.devices.ucall import SYNC, Ucall
from vmm.spp.event import DENY, SppEvent, SppVerdict

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "guests" / "build" / "fuzz-parser.bin"
CRASH = 245  # the trap library's TRAP_EXIT_UNEXPECTED through the debug-exit port


def symbol(name: str) -> int:
    out = subprocess.run(["nm", str(IMAGE.with_suffix(".elf"))], capture_output=True, text=True, check=True).stdout
    return next(int(a, 16) for a, _, n in (line.split() for line in out.splitlines() if line.count(" ") == 2)
                if n == name)  # fmt: skip


def random_input(rng: random.Random) -> bytes:
    out = bytearray()
    for _ in range(rng.randint(1, 6)):
        op = rng.choice(b"SDP")
        out += bytes([op, rng.randrange(256)]) + (bytes([rng.randrange(256) // rng.choice((1, 64))]) if op != 80 else b"")
    return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args()
    rng = random.Random(opts.seed)

    m = Machine(16 << 20, console=io.BytesIO())
    m.load_flat(IMAGE.read_bytes(), CpuMode.LONG)
    spp = m.enable_spp()
    spp.protect(symbol("table_page"), mask=0xFFFFFFFD)  # sub-page 1: bytes 128-255 of the table page
    violations: list[SppEvent] = []

    def record(event: SppEvent) -> SppVerdict:
        violations.append(event)
        return DENY

    spp.add_policy(record)
    mailbox: list[int] = []
    m.ucall.on(SYNC, lambda call: mailbox.append(call.args[1]) if call.args[0] == 0 else None)
    trigger = m.snapshot_at("sync:1")  # stage 0: the guest waits for its input
    m.run(timeout=10)
    assert trigger.fired(), "the guest did not reach its mailbox"
    snap = m.snapshot()

    crashes = spp_hits = 0
    start = time.perf_counter()
    for n in range(opts.inputs):
        data = random_input(rng)
        m.memory.write(mailbox[0], len(data).to_bytes(4, "little") + data)
        violations.clear()
        result = m.run(timeout=5)
        if result.status == CRASH:
            crashes += 1
            last = m.console.transcript.splitlines()[-1].decode()
            print(f"input {n}: {data.hex()} crashes the parser: {last}")
        elif violations:
            spp_hits += 1
            print(f"input {n}: {data.hex()} writes the protected sub-page: {violations[0].describe()}")
        elif result.status != 0:
            print(f"input {n}: {data.hex()} ends with status {result.status}: {result.reason}")
        m.reset(snap)
    seconds = time.perf_counter() - start
    print(f"{opts.inputs} inputs in {seconds:.2f} s ({opts.inputs / seconds:.0f}/s): "
          f"{crashes} crash, {spp_hits} hit the protected sub-page")  # fmt: skip
    m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
