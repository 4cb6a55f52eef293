"""Hostile guest images from seeds: port-hammer with its configuration patched in, and
random-instruction images from guests/random_insns.py on the harness (both built by make guests)."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from types import ModuleType

from tests.fuzz.judge import ROOT

GUESTS = ROOT / "guests"
BUILD = GUESTS / "build"

# struct hammer_config in guests/port-hammer.c: magic, seed, cpl, iterations, ram_size
HAMMER_CONFIG = struct.Struct("<8sQIIQ")
HAMMER_MAGIC = b"PHAMMER1"
RAM = 128 << 20  # pyvmm's default -m, where port-hammer puts "RAM's end"


def hammer_image(dest: Path, *, seed: int, cpl: int, iterations: int) -> Path:
    image = bytearray((BUILD / "port-hammer.bin").read_bytes())
    at = image.find(HAMMER_MAGIC)
    if at < 0 or image.find(HAMMER_MAGIC, at + 1) >= 0:
        raise ValueError("port-hammer.bin must hold exactly one PHAMMER1 configuration: rebuild the guests")
    HAMMER_CONFIG.pack_into(image, at, HAMMER_MAGIC, seed, cpl, iterations, RAM)
    dest.write_bytes(image)
    return dest


def _random_insns() -> ModuleType:
    spec = importlib.util.spec_from_file_location("random_insns", GUESTS / "random_insns.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_insns_image(dest: Path, *, seed: int, cpl: int, idt: bool, chunks: int = 64, chunk_size: int = 32) -> Path:
    gen = _random_insns()
    harness = (BUILD / "random-insns-harness.bin").read_bytes()
    dest.write_bytes(gen.build_image(harness, seed, cpl, idt, chunks, chunk_size))
    return dest


def ci_random_insns_images() -> list[Path]:
    """The fixed seed set `make guests` builds (guests/Makefile: seeds 1-8 at CPL 0 and 3 with the
    trap library, seed 1 at both without it)."""
    images = sorted((BUILD / "random-insns").glob("seed-*.bin"))
    if len(images) < 18:
        raise FileNotFoundError(f"{BUILD / 'random-insns'} holds {len(images)} images, not 18: run `make guests`")
    return images
