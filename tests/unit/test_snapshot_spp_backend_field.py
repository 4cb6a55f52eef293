"""The SPP backend in a snapshot file: written in META, read back; a file from before the field
existed (no spp_backend key) reads as the software engine when it has SPP masks, as none when it
has none; a backend that is no name is a malformed file."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from vmm.errors import SnapshotCorrupt
from vmm.snapshot.fileformat import HEADER, MAGIC, SECTION, VERSION, decode, encode
from vmm.snapshot.state import Snapshot
from vmm.snapshot.vcpu_state import VcpuSnapshot
from vmm.snapshot.vm_state import VmSnapshot


def synthetic(spp: dict[int, int] | None, backend: str | None) -> Snapshot:
    vcpu = VcpuSnapshot(0, 0, {k: bytes(8) for k in ("regs", "sregs", "xsave", "xcrs", "debugregs", "events")},
                        struct.pack("<IIQ", 0x10, 0, 1), b"", b"\0" * 8)  # fmt: skip
    vm = VmSnapshot((), None, 1, ((0, 1 << 20, 0),))
    return Snapshot({"mem_size": 1 << 20, "smp": 1}, [vcpu], vm, {}, spp, {}, {}, backend)


def with_meta(data: bytes, change: dict[str, object], drop: str | None = None) -> bytes:
    """`data` with its META section's JSON changed, and the header's length and checksum redone."""
    payload = data[HEADER.size :]
    _, size = SECTION.unpack_from(payload)
    meta = json.loads(payload[SECTION.size : SECTION.size + size])
    meta.update(change)
    if drop is not None:
        del meta[drop]
    body = json.dumps(meta).encode()
    payload = SECTION.pack(b"META", len(body)) + body + payload[SECTION.size + size :]
    return HEADER.pack(MAGIC, VERSION, HEADER.size, len(payload), hashlib.sha256(payload).digest()) + payload


@pytest.mark.parametrize("backend", ["software", "kernel:v12", "kernel:rfc-v1"])
def test_the_backend_round_trips(backend: str) -> None:
    assert decode(encode(synthetic({0x3000: 0}, backend))).spp_backend == backend


def test_a_file_without_the_field_reads_as_the_software_engine_or_none() -> None:
    with_spp = with_meta(encode(synthetic({0x3000: 0}, "software")), {}, drop="spp_backend")
    assert decode(with_spp).spp_backend == "software"
    without = with_meta(encode(synthetic(None, None)), {}, drop="spp_backend")
    assert decode(without).spp_backend is None


def test_a_backend_that_is_no_name_is_a_malformed_file() -> None:
    with pytest.raises(SnapshotCorrupt, match="spp_backend is 7"):
        decode(with_meta(encode(synthetic({0x3000: 0}, "software")), {"spp_backend": 7}))
