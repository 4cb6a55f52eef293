"""`pyvmm restore` of a bad snapshot: one line on stderr, nothing on stdout (the guest never
runs), and a status of its own per defect: 40 missing or truncated, 42 corrupted or not a
snapshot, 44 another format version, 46 RAM size or vCPU count against the options, 48 CPUID
features this host lacks. A refused in-process restore leaves the machine as it was."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
from pathlib import Path

import pytest
from conftest import guest, one_line_error, pyvmm

from vmm import CpuMode, Machine
from vmm.errors import ExitStatus, SnapshotMismatch
from vmm.snapshot import Snapshot
from vmm.snapshot.state import cpuid_features

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snap") / "good.snap"
    proc = pyvmm("run", "-q", str(guest("snap-long")), "--snapshot-at", "sync:2", "--snapshot-to", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    return path


def restore_error(path: Path, *args: str, status: int) -> str:
    return one_line_error(pyvmm("restore", str(path), *args), status)


def test_a_good_file_restores(good: Path) -> None:
    proc = pyvmm("restore", "-q", str(good))
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"round 3:")


def test_a_missing_file(tmp_path: Path) -> None:
    line = restore_error(tmp_path / "none.snap", status=ExitStatus.SNAPSHOT_UNREADABLE)
    assert "cannot read snapshot" in line and "does not exist" in line


@pytest.mark.parametrize("keep", [20, 64, 5000])
def test_a_truncated_file(good: Path, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.snap"
    cut.write_bytes(good.read_bytes()[:keep])
    line = restore_error(cut, status=ExitStatus.SNAPSHOT_UNREADABLE)
    assert "is truncated" in line


def test_a_corrupted_byte(good: Path, tmp_path: Path) -> None:
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "flip.snap"
    bad.write_bytes(data)
    line = restore_error(bad, status=ExitStatus.SNAPSHOT_CORRUPT)
    assert "checksum does not match" in line


def test_a_file_that_is_not_a_snapshot(tmp_path: Path) -> None:
    line = restore_error(guest("snap-long"), status=ExitStatus.SNAPSHOT_CORRUPT)
    assert "is not a pyvmm snapshot" in line


def test_another_format_version(good: Path, tmp_path: Path) -> None:
    data = bytearray(good.read_bytes())
    struct.pack_into("<I", data, 8, 2)
    bad = tmp_path / "v2.snap"
    bad.write_bytes(data)
    line = restore_error(bad, status=ExitStatus.SNAPSHOT_VERSION)
    assert "format version 2; this pyvmm reads version 1" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-m", "32"], "snapshot has RAM size 0x8000000, the options ask for 0x2000000"),
        (["--mem", "8M"], "snapshot has RAM size 0x8000000, the options ask for 0x800000"),
        (["-smp", "2"], "snapshot has vCPU count 1, the options ask for 2"),
    ],
)
def test_options_that_disagree_with_the_snapshot(good: Path, args: list[str], words: str) -> None:
    line = restore_error(good, *args, status=ExitStatus.SNAPSHOT_MISMATCH)
    assert words in line


def test_cpuid_features_this_host_lacks(good: Path, tmp_path: Path) -> None:
    """A snapshot from a host with one more feature bit (7.0 ebx) than this one, re-checksummed
    so that only the feature check can refuse it."""
    snap = Snapshot.load(str(good))
    vcpu = snap.vcpus[0]
    features = cpuid_features(vcpu.cpuid)
    missing = next(b for b in range(32) if not features[(7, 0, "ebx")] >> b & 1)
    raw = bytearray(vcpu.cpuid)
    nent = struct.unpack_from("<I", raw)[0]
    for i in range(nent):
        off = 8 + i * 40
        fn, idx = struct.unpack_from("<II", raw, off)
        if (fn, idx) == (7, 0):
            ebx = struct.unpack_from("<I", raw, off + 16)[0]
            struct.pack_into("<I", raw, off + 16, ebx | 1 << missing)
    snap.vcpus[0] = dataclasses.replace(vcpu, cpuid=bytes(raw))
    other = tmp_path / "other-host.snap"
    snap.save(str(other))
    line = restore_error(other, status=ExitStatus.SNAPSHOT_HOST)
    assert f"CPUID 0x7.0 ebx bits {1 << missing:#x} that this host lacks" in line


def test_a_refused_restore_changes_nothing() -> None:
    with Machine(16 << 20, console=io.BytesIO()) as m, Machine(16 << 20, smp=2, console=io.BytesIO()) as two:
        m.load_flat(guest("snap-long").read_bytes(), CpuMode.LONG)
        two.load_flat(guest("hello-long").read_bytes(), CpuMode.LONG)
        other = two.snapshot()
        before = hashlib.sha256(m.memory.read(0, 16 << 20)).digest()
        regs = bytes(m.vcpu.get_raw("regs"))
        with pytest.raises(SnapshotMismatch, match="snapshot has vCPU count 2, this machine 1"):
            m.restore(other)
        assert hashlib.sha256(m.memory.read(0, 16 << 20)).digest() == before
        assert m.vcpu.get_raw("regs") == regs
        assert m.run(timeout=10).status == 0  # and it still runs its own guest
