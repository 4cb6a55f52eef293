#!/usr/bin/env python3
"""Write a flat 64-bit guest image that runs random instruction bytes, from a seed.

    python3 guests/random_insns.py --seed N --cpl 3 --idt yes -o out.bin
        [--chunks 64] [--chunk-size 32] [--harness guests/build/random-insns-harness.bin]

The image is random-insns-harness.bin (built by `make -C guests`) with its configuration and its
block of instruction bytes filled in: --chunks chunks of --chunk-size bytes from Python's
`random.Random(seed)`, each followed by the harness's trailer (15 nops and a ud2). The same seed
and options always give the same file. Run it like any flat image, with a timeout:

    pyvmm run out.bin --timeout 5

--cpl picks where the chunks run (0: in KVM's emulator on this project's hosts, 3: natively);
--idt no leaves the trap library out, so the first exception is a triple fault. What the guest
prints and the ways a run can end are in guests/README.md ("random-insns").
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from pathlib import Path

MAGIC = b"RNDINSN1"
# struct rnd_config in random-insns-harness.c: magic, seed, cpl, use_idt, nchunks, chunk_size,
# block_at (offset of the block from the magic), block_capacity
CONFIG = struct.Struct("<8sQIIIIII")
TRAILER = b"\x90" * 15 + b"\x0f\x0b"
DEFAULT_HARNESS = Path(__file__).resolve().parent / "build" / "random-insns-harness.bin"


class ImageError(Exception):
    """The harness image is missing its configuration or the request does not fit."""


def find_config(image: bytes) -> int:
    at = image.find(MAGIC)
    if at < 0 or image.find(MAGIC, at + 1) >= 0:
        raise ImageError("the harness image must hold exactly one RNDINSN1 configuration")
    return at


def random_block(seed: int, chunks: int, chunk_size: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(rng.randbytes(chunk_size) + TRAILER for _ in range(chunks))


def build_image(harness: bytes, seed: int, cpl: int, idt: bool, chunks: int, chunk_size: int) -> bytes:
    at = find_config(harness)
    _, _, _, _, _, _, block_at, capacity = CONFIG.unpack_from(harness, at)
    block = random_block(seed, chunks, chunk_size)
    if len(block) > capacity:
        raise ImageError(f"{chunks} chunks of {chunk_size} bytes need {len(block)} bytes; the block holds {capacity}")
    if at + block_at + capacity > len(harness):
        raise ImageError("the harness image ends inside its block: rebuild it")
    image = bytearray(harness)
    CONFIG.pack_into(image, at, MAGIC, seed, cpl, int(idt), chunks, chunk_size, block_at, capacity)
    start = at + block_at
    image[start : start + capacity] = block.ljust(capacity, b"\xcc")  # int3 after the last chunk
    return bytes(image)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Write a random-instruction guest image from a seed.")
    p.add_argument("--seed", type=int, required=True, help="seed of the instruction bytes")
    p.add_argument("--cpl", type=int, choices=[0, 3], default=3, help="privilege level of the chunks [3]")
    p.add_argument("--idt", choices=["yes", "no"], default="yes", help="install the trap library [yes]")
    p.add_argument("--chunks", type=int, default=64, help="number of chunks [64]")
    p.add_argument("--chunk-size", type=int, default=32, help="random bytes per chunk [32]")
    p.add_argument("--harness", type=Path, default=DEFAULT_HARNESS, help="the harness image")
    p.add_argument("-o", "--output", type=Path, required=True, help="image to write")
    args = p.parse_args(argv)
    if args.chunks < 1 or args.chunk_size < 1:
        p.error("--chunks and --chunk-size must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        harness = args.harness.read_bytes()
        image = build_image(harness, args.seed, args.cpl, args.idt == "yes", args.chunks, args.chunk_size)
        args.output.write_bytes(image)
    except (OSError, ImageError) as e:
        print(f"random_insns.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
