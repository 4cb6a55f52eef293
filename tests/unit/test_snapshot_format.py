"""The snapshot file format without KVM: a synthetic snapshot survives encode/decode field for
field, zero pages are left out of the file, and each defect maps to its own error."""

from __future__ import annotations

import struct

import pytest

from vmm.errors import SnapshotCorrupt, SnapshotUnreadable, SnapshotVersion
from vmm.snapshot.fileformat import HEADER, decode, encode
from vmm.snapshot.state import Snapshot
from vmm.snapshot.vcpu_state import VcpuSnapshot
from vmm.snapshot.vm_state import VmSnapshot


def synthetic(pages: dict[int, bytes]) -> Snapshot:
    vcpu = VcpuSnapshot(0, 3, {"regs": b"r" * 144, "sregs": b"s" * 312, "xsave": b"x" * 4096, "xcrs": b"c" * 392,
                               "debugregs": b"d" * 128, "events": b"e" * 64, "lapic": b"l" * 1024},
                        struct.pack("<IIQ", 0x10, 0, 1234), b"", b"\0" * 8)  # fmt: skip
    vm = VmSnapshot((b"p" * 520, b"q" * 520, b"i" * 520), b"t" * 112, 987654321, ((0, 1 << 20, 0),))
    return Snapshot({"mem_size": 1 << 20, "smp": 1}, [vcpu], vm, {"isa-serial": {"lcr": 3}}, {0x3000: 0xFFFFFFFD},
                    {"policy:x": "{\"seen\": 2}"}, pages)  # fmt: skip


def test_round_trip_keeps_every_field() -> None:
    pages = {0x1000: b"\x01" * 4096, 0x2000: b"\x02" * 4096, 0x9000: b"\x09" * 4096}
    snap = synthetic(pages)
    back = decode(encode(snap))
    assert back.spec == snap.spec and back.devices == snap.devices and back.hooks == snap.hooks
    assert back.spp == snap.spp and back.vm == snap.vm and back.vcpus == snap.vcpus
    assert back.ram == pages


def test_only_nonzero_pages_take_room() -> None:
    small = len(encode(synthetic({0x1000: b"\x01" * 4096})))
    large = len(encode(synthetic({0x1000: b"\x01" * 4096, 0x5000: b"\x05" * 4096})))
    assert large - small == 4096 + 16  # one page and its run header


def test_each_defect_has_its_error() -> None:
    data = encode(synthetic({0x1000: b"\x01" * 4096}))
    with pytest.raises(SnapshotUnreadable, match="truncated"):
        decode(data[:-1])
    with pytest.raises(SnapshotUnreadable, match="shorter than its header"):
        decode(data[: HEADER.size - 1])
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    with pytest.raises(SnapshotCorrupt, match="checksum"):
        decode(bytes(flipped))
    with pytest.raises(SnapshotCorrupt, match="not a pyvmm snapshot"):
        decode(b"\x7fELF" + data[4:])
    newer = bytearray(data)
    struct.pack_into("<I", newer, 8, 7)
    with pytest.raises(SnapshotVersion, match="version 7"):
        decode(bytes(newer))
    with pytest.raises(SnapshotCorrupt, match="after its payload"):
        decode(data + b"\0")
