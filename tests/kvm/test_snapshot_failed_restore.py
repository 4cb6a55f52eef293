"""A restore that KVM refuses partway: the snapshot's IA32_LSTAR (the SYSCALL entry point) holds
a non-canonical address, which KVM rejects, so KVM_SET_MSRS stops at it, after guest RAM, the PIT,
the registers, the XSAVE area and the XCRs have already been put back from the snapshot. The
machine's own state was captured before the first change and goes back: the restore fails with
one message (status 48), and the machine runs on from where it stood as if the restore had never
been tried. A fast reset that fails the same way has nothing to go back to: the machine then
refuses to run (status 50) until a restore succeeds."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, guest

from vmm import CpuMode, Machine
from vmm.errors import ExitStatus, SnapshotHalfRestored, SnapshotHost, status_of
from vmm.snapshot import Snapshot

pytestmark = pytest.mark.kvm

MEM = 16 << 20
MSR_LSTAR = 0xC0000082
ENTRY = struct.Struct("<IIQ")


def with_bad_lstar(snap: Snapshot) -> Snapshot:
    """`snap` with a non-canonical address in vCPU 0's IA32_LSTAR."""
    v = snap.vcpus[0]
    entries = bytearray(v.msrs)
    for off in range(0, len(entries), ENTRY.size):
        index, _, _ = ENTRY.unpack_from(entries, off)
        if index == MSR_LSTAR:
            ENTRY.pack_into(entries, off, index, 0, 1 << 63)
            break
    else:
        pytest.fail("IA32_LSTAR is not among the MSRs KVM lists as saveable here")
    return dataclasses.replace(snap, vcpus=[dataclasses.replace(v, msrs=bytes(entries)), *snap.vcpus[1:]])


def machine() -> tuple[Machine, io.BytesIO]:
    out = io.BytesIO()
    m = Machine(MEM, console=out, log=io.StringIO())
    m.load_flat(guest("snap-long").read_bytes(), CpuMode.LONG)
    return m, out


def state(m: Machine) -> tuple[bytes, ...]:
    v = m.vcpus[0]
    return (v.get_raw("regs"), v.get_raw("sregs"), v.get_raw("xsave"), hashlib.sha256(m.memory.read(0, MEM)).digest())


def uninterrupted() -> tuple[bytes, int]:
    m, out = machine()
    with m:
        status = m.run(timeout=10).status
        return out.getvalue(), status


def test_a_restore_kvm_refuses_partway_leaves_the_machine_as_it_was() -> None:
    whole, status = uninterrupted()
    m, out = machine()
    with m:
        m.snapshot_at("sync:2")
        m.run(timeout=10)
        early = m.snapshot()
        m.snapshot_at("sync:3")
        m.run(timeout=10)  # three rounds further on: other registers, other RAM
        here = state(m)
        printed = out.getvalue()
        assert here != state_of_snapshot(early)
        with pytest.raises(SnapshotHost, match=r"refused MSR 0xc0000082.*as it was before the restore") as e:
            m.restore(with_bad_lstar(early))
        assert status_of(e.value) == ExitStatus.SNAPSHOT_HOST
        assert state(m) == here
        assert m.run(timeout=10).status == status
        assert out.getvalue() == whole  # it went on from where it stood
        assert len(printed) < len(whole)


def state_of_snapshot(snap: Snapshot) -> tuple[bytes, ...]:
    ram = b"".join(snap.ram.get(gpa, bytes(4096)) for gpa in range(0, MEM, 4096))
    v = snap.vcpus[0].raw
    return (v["regs"], v["sregs"], v["xsave"], hashlib.sha256(ram).digest())


def test_a_fast_reset_kvm_refuses_partway_leaves_a_machine_that_will_not_run() -> None:
    whole, status = uninterrupted()
    m, out = machine()
    with m:
        m.snapshot_at("sync:2")
        m.run(timeout=10)
        printed = out.getvalue()
        snap = m.snapshot()
        good = dataclasses.replace(snap, vcpus=list(snap.vcpus))
        m.reset(snap)  # the first reset: a restore, which arms the dirty log
        m.snapshot_at("sync:1")
        m.run(timeout=10)
        snap.vcpus[:] = with_bad_lstar(snap).vcpus  # the same snapshot object: the fast path
        with pytest.raises(SnapshotHalfRestored, match=r"fast reset failed midway.*refused MSR 0xc0000082") as e:
            m.reset(snap)
        assert status_of(e.value) == ExitStatus.SNAPSHOT_HALF_RESTORED
        with pytest.raises(SnapshotHalfRestored, match="restore a snapshot before running"):
            m.run(timeout=10)
        m.restore(good)
        out.seek(0)
        out.truncate()
        assert m.run(timeout=10).status == status
        assert printed + out.getvalue() == whole


def test_pyvmm_restore_of_a_file_kvm_refuses_is_one_line_and_status_48(tmp_path: Path) -> None:
    m, _ = machine()
    with m:
        m.snapshot_at("sync:2")
        m.run(timeout=10)
        path = tmp_path / "bad-lstar.snap"
        with_bad_lstar(m.snapshot()).save(str(path))
    r = subprocess.run([sys.executable, "-m", "vmm.cli", "restore", str(path)], cwd=ROOT, capture_output=True,
                       timeout=60, env=dict(os.environ))  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == ExitStatus.SNAPSHOT_HOST, err
    assert err.count("\n") == 1 and err.startswith("pyvmm: ") and "refused MSR 0xc0000082" in err, err
