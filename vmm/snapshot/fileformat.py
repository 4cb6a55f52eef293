"""The snapshot file format, version 1. All integers are little-endian.

    header (64 bytes)
      0  8  magic "PYVMSNAP"
      8  4  format version (1)
     12  4  header size (64)
     16  8  payload length in bytes
     24 32  SHA-256 of the payload
     56  8  zero
    payload: sections, each a 16-byte head and its body
      0  4  tag (ASCII)
      4  4  zero
      8  8  body length
    sections, in this order:
      META  JSON (UTF-8): spec (mem_size, smp, irqchip, platform, debug_exit, testdev, strict),
            vcpus (count), clock, memslots [[gpa, size, flags]...], devices {key: state},
            spp {page: mask} or null, spp_backend (software, kernel:rfc-v1, kernel:v12; absent
            in files from before it was written: software), hooks {name: JSON text}
      VCPU  one per vCPU: u32 index, u32 MP state, then records of (16-byte ASCII name padded with
            NULs, u32 length, bytes): the kernel's structs regs, sregs, xsave (the area of
            KVM_GET_XSAVE2: as long as KVM_CAP_XSAVE2 said, 4096 bytes or more), xcrs, debugregs,
            events, lapic (with an irqchip), msrs and tscdline (kvm_msr_entry arrays), cpuid
            (kvm_cpuid2 with its entries)
      VMCH  records as in VCPU: pic0, pic1, ioapic (kvm_irqchip), pit2 (kvm_pit_state2); empty
            without an irqchip
      RAM   runs of non-zero pages: u64 guest-physical address, u32 page count, u32 zero, then
            count * 4096 bytes; pages not in a run are zero
      END   empty

A reader checks, in order: the size (truncated), the magic (not a snapshot), the version, the
payload length against the file (truncated), the checksum (corrupted), then the structure.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass

from vmm.errors import SnapshotCorrupt, SnapshotUnreadable, SnapshotVersion
from vmm.inputs import InputFileError, check_regular, open_output, read_regular
from vmm.snapshot.ram import PAGE, Pages
from vmm.snapshot.vcpu_state import VcpuSnapshot
from vmm.snapshot.vm_state import VmSnapshot

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any, Protocol

MAGIC = b"PYVMSNAP"
VERSION = 1
HEADER = struct.Struct("<8sIIQ32s8x")
SECTION = struct.Struct("<4s4xQ")
RECORD = struct.Struct("<16sI")
RUN = struct.Struct("<QI4x")
VCPU_HEAD = struct.Struct("<II")
_VM_RECORDS = ("pic0", "pic1", "ioapic")
# Guest RAM is stored sparsely, so a snapshot is at most about its RAM; this bound only keeps a
# read from starting on something no machine here could have written.
MAX_SNAPSHOT_FILE = 1 << 40
RAW_KINDS = ("regs", "sregs", "xsave", "xcrs", "debugregs", "events", "lapic")


if TYPE_CHECKING:  # named only in annotations: creating a Protocol class costs start-up time

    class SnapshotFields(Protocol):
        """What is written: `vmm.snapshot.state.Snapshot` (kept apart so this module need not know it)."""

        spec: dict[str, Any]
        vcpus: list[VcpuSnapshot]
        vm: VmSnapshot
        devices: dict[str, dict[str, Any]]
        spp: dict[int, int] | None
        hooks: dict[str, str]
        ram: Pages
        spp_backend: str | None


@dataclass
class Decoded:
    spec: dict[str, Any]
    vcpus: list[VcpuSnapshot]
    vm: VmSnapshot
    devices: dict[str, dict[str, Any]]
    spp: dict[int, int] | None
    hooks: dict[str, str]
    ram: Pages
    spp_backend: str | None


def _records(items: list[tuple[str, bytes]]) -> bytes:
    return b"".join(RECORD.pack(name.encode(), len(data)) + data for name, data in items)


def _section(tag: bytes, body: bytes) -> bytes:
    return SECTION.pack(tag, len(body)) + body


def _ram_runs(pages: Pages) -> bytes:
    out = []
    order = sorted(pages)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and order[j + 1] == order[j] + PAGE:
            j += 1
        out.append(RUN.pack(order[i], j - i + 1))
        out.extend(pages[g] for g in order[i : j + 1])
        i = j + 1
    return b"".join(out)


def encode(snap: SnapshotFields) -> bytes:
    meta = {
        "spec": snap.spec,
        "vcpus": len(snap.vcpus),
        "clock": snap.vm.clock,
        "memslots": [list(m) for m in snap.vm.memslots],
        "devices": snap.devices,
        "spp": None if snap.spp is None else {str(p): m for p, m in snap.spp.items()},
        "spp_backend": snap.spp_backend,
        "hooks": snap.hooks,
    }
    parts = [_section(b"META", json.dumps(meta, sort_keys=True).encode())]
    for v in snap.vcpus:
        items = [(k, v.raw[k]) for k in RAW_KINDS if k in v.raw]
        items += [("msrs", v.msrs), ("tscdline", v.late_msrs), ("cpuid", v.cpuid)]
        parts.append(_section(b"VCPU", VCPU_HEAD.pack(v.index, v.mp_state) + _records(items)))
    vm_items = list(zip(_VM_RECORDS, snap.vm.irqchip, strict=False))
    if snap.vm.pit is not None:
        vm_items.append(("pit2", snap.vm.pit))
    parts.append(_section(b"VMCH", _records(vm_items)))
    parts.append(_section(b"RAM ", _ram_runs(snap.ram)))
    parts.append(_section(b"END ", b""))
    payload = b"".join(parts)
    return HEADER.pack(MAGIC, VERSION, HEADER.size, len(payload), hashlib.sha256(payload).digest()) + payload


def write_snapshot(snap: SnapshotFields, path: str) -> None:
    data = encode(snap)
    try:
        fd = open_output(path)  # a FIFO or directory is refused, not blocked on
    except InputFileError as e:
        raise SnapshotUnreadable(f"cannot write snapshot {path!r}: it {e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise SnapshotUnreadable(f"cannot write snapshot {path!r}: {e.strerror}") from None


def read_snapshot(path: str) -> Decoded:
    try:
        # only a regular file: a FIFO would block for ever and /dev/zero never ends
        size = check_regular(path, MAX_SNAPSHOT_FILE)
        with open(path, "rb") as f:
            head = f.read(HEADER.size)
        # the header says how long the file is: a file of another length (a 3 GiB sparse file,
        # say) is refused from its size before the rest of it is read
        _check_header(head, size, path)
        data = read_regular(path, size)
    except InputFileError as e:
        raise SnapshotUnreadable(f"cannot read snapshot {path!r}: it {e}") from None
    except OSError as e:
        raise SnapshotUnreadable(f"cannot read snapshot {path!r}: {e.strerror}") from None
    return decode(data, path)


def _check_header(head: bytes, size: int, path: str) -> None:
    if len(head) < HEADER.size:
        decode(head, path)  # says what is wrong with a short file
    magic, version, header_size, length, _ = HEADER.unpack_from(head)
    if magic != MAGIC or version != VERSION or header_size != HEADER.size:
        decode(head, path)  # the same messages as for a whole file
    if size < HEADER.size + length:
        raise SnapshotUnreadable(f"snapshot {path} is truncated: {size - HEADER.size} of {length} payload bytes")
    if size > HEADER.size + length:
        raise SnapshotCorrupt(f"snapshot {path} has {size - HEADER.size - length} bytes after its payload")


def decode(data: bytes, path: str = "snapshot") -> Decoded:
    if len(data) < HEADER.size:
        if not MAGIC.startswith(data[:8]):
            raise SnapshotCorrupt(f"{path} is not a pyvmm snapshot (no PYVMSNAP magic)")
        raise SnapshotUnreadable(f"snapshot {path} is truncated: {len(data)} bytes, shorter than its header")
    magic, version, header_size, length, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotCorrupt(f"{path} is not a pyvmm snapshot (no PYVMSNAP magic)")
    if version != VERSION:
        raise SnapshotVersion(f"snapshot {path} has format version {version}; this pyvmm reads version {VERSION}")
    if header_size != HEADER.size:
        raise SnapshotCorrupt(f"snapshot {path} has a {header_size}-byte header, version 1's is {HEADER.size}")
    payload = data[HEADER.size :]
    if len(payload) < length:
        raise SnapshotUnreadable(f"snapshot {path} is truncated: {len(payload)} of {length} payload bytes")
    if len(payload) > length:
        raise SnapshotCorrupt(f"snapshot {path} has {len(payload) - length} bytes after its payload")
    if hashlib.sha256(payload).digest() != digest:
        raise SnapshotCorrupt(f"snapshot {path} is corrupted: its checksum does not match its contents")
    try:
        return _parse(payload)
    except (KeyError, ValueError, TypeError, struct.error, IndexError) as e:
        raise SnapshotCorrupt(f"snapshot {path} is malformed: {e}") from None


def _split_records(body: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(body):
        name, size = RECORD.unpack_from(body, pos)
        pos += RECORD.size
        if pos + size > len(body):
            raise ValueError(f"record {name!r} runs past its section")
        out[name.rstrip(b"\0").decode()] = body[pos : pos + size]
        pos += size
    return out


def _parse(payload: bytes) -> Decoded:
    sections: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(payload):
        tag, size = SECTION.unpack_from(payload, pos)
        pos += SECTION.size
        if pos + size > len(payload):
            raise ValueError(f"section {tag!r} runs past the payload")
        sections.append((tag, payload[pos : pos + size]))
        pos += size
    tags = [t for t, _ in sections]
    if not tags or tags[0] != b"META" or tags[-1] != b"END ":
        raise ValueError("sections are not META ... END")
    meta: dict[str, Any] = json.loads(sections[0][1])
    vcpus = []
    for _, body in (s for s in sections if s[0] == b"VCPU"):
        index, mp_state = VCPU_HEAD.unpack_from(body)
        rec = _split_records(body[VCPU_HEAD.size :])
        raw = {k: rec[k] for k in RAW_KINDS if k in rec}
        vcpus.append(VcpuSnapshot(index, mp_state, raw, rec["msrs"], rec["tscdline"], rec["cpuid"]))
    if len(vcpus) != meta["vcpus"]:
        raise ValueError(f"{len(vcpus)} vCPU sections for {meta['vcpus']} vCPUs")
    vm_rec = _split_records(dict(sections)[b"VMCH"])
    chips = tuple(vm_rec[k] for k in _VM_RECORDS if k in vm_rec)
    vm = VmSnapshot(chips, vm_rec.get("pit2"), int(meta["clock"]), tuple(tuple(m) for m in meta["memslots"]))
    ram: Pages = {}
    body = dict(sections)[b"RAM "]
    pos = 0
    while pos < len(body):
        gpa, count = RUN.unpack_from(body, pos)
        pos += RUN.size
        if pos + count * PAGE > len(body) or gpa % PAGE:
            raise ValueError(f"RAM run at {gpa:#x} of {count} pages is malformed")
        for i in range(count):
            ram[gpa + i * PAGE] = body[pos + i * PAGE : pos + (i + 1) * PAGE]
        pos += count * PAGE
    spp = None if meta["spp"] is None else {int(p): int(m) for p, m in meta["spp"].items()}
    backend = meta.get("spp_backend") or (None if spp is None else "software")
    if backend is not None and not isinstance(backend, str):
        raise ValueError(f"spp_backend is {backend!r}, not a name")
    return Decoded(meta["spec"], vcpus, vm, meta["devices"], spp, meta["hooks"], ram, backend)
