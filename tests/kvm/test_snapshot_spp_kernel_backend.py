"""Snapshots of a machine whose SPP is the kernel backend (the SPP patch's v12 ABI). No kernel here
carries the patch, so its SPP calls go to `PatchedV12Mock`, a named mock of what the patch adds
(KVM_ENABLE_CAP of its capability, KVM_SUBPAGES_SET/GET_ACCESS on the VM fd, answered from a table
as the patch's code does); every other call, the whole machine and its snapshot, is real KVM.

The snapshot names its backend, so a restore puts the masks back through the same one (a restored
machine re-sends them to the kernel, where the protection lives), refuses to swap the software
engine in for it (status 46), and a new machine on a host without the patch is refused (48).
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import pytest
from conftest import guest

from kvm_abi import ffi, ioctls
from kvm_abi.spp import FULL_ACCESS, KVM_SUBPAGES_GET_ACCESS, KVM_SUBPAGES_SET_ACCESS, profile, spp_ffi
from vmm import CpuMode, Machine
from vmm.errors import ExitStatus, SnapshotHost, SnapshotMismatch, status_of
from vmm.kvm.calls import raw_ioctl
from vmm.snapshot import Snapshot
from vmm.spp.choice import TRUST_ENV

pytestmark = pytest.mark.kvm

MEM = 16 << 20
V12 = profile("v12")
MASKS = {0x300000: 0xFFFF0000, 0x301000: 0x0000FFFF, 0x5F0000: 0}


class PatchedV12Mock:
    """Mock of a kernel with the SPP patch, v12: the capability switches SPP on (every page then
    FULL_ACCESS), SET_ACCESS stores one mask per page and returns npages, GET_ACCESS reads them,
    both -ENODEV before the capability; all else goes to the real ioctl."""

    def __init__(self, vm_fd: int) -> None:
        self.vm_fd = vm_fd
        self.enabled = False
        self.access: dict[int, int] = {}  # gfn -> mask
        self.sets = 0

    def __call__(self, fd: int, request: int, arg: Any) -> int:
        on_vm = fd == self.vm_fd
        if on_vm and request == ioctls.KVM_ENABLE_CAP and int(ffi.cast("struct kvm_enable_cap *", arg).cap) == V12.cap:
            self.enabled = True
            return 0
        if on_vm and request in (KVM_SUBPAGES_SET_ACCESS, KVM_SUBPAGES_GET_ACCESS):
            if not self.enabled:
                return -errno.ENODEV
            sub: Any = spp_ffi.cast(V12.subpage_struct + " *", arg)
            gfn, n = int(getattr(sub, V12.subpage_fields[0])), int(sub.npages)
            for i in range(n):
                if request == KVM_SUBPAGES_SET_ACCESS:
                    self.access[gfn + i] = int(sub.access_map[i])
                else:
                    sub.access_map[i] = self.access.get(gfn + i, FULL_ACCESS)
            self.sets += request == KVM_SUBPAGES_SET_ACCESS
            return n
        return raw_ioctl(fd, request, arg)

    def mask(self, gpa: int) -> int:
        return self.access.get(gpa >> 12, FULL_ACCESS)


def machine(monkeypatch: pytest.MonkeyPatch, backend: str = "kernel") -> tuple[Machine, io.BytesIO, Any]:
    out = io.BytesIO()
    m = Machine(MEM, console=out, log=io.StringIO())
    m.load_flat(guest("snap-long").read_bytes(), CpuMode.LONG)
    if backend == "software":
        return m, out, m.enable_spp()
    mock = PatchedV12Mock(m.vm.fd)
    with monkeypatch.context() as mp:
        mp.setenv(TRUST_ENV, "1")  # the check for the patch's symbols would refuse this kernel
        m.enable_spp("kernel", "v12", kernel_ioctl=mock)
    return m, out, mock


def uninterrupted() -> bytes:
    out = io.BytesIO()
    with Machine(MEM, console=out, log=io.StringIO()) as m:
        m.load_flat(guest("snap-long").read_bytes(), CpuMode.LONG)
        assert m.run(timeout=10).status == 0
    return out.getvalue()


def test_a_kernel_backend_snapshot_restores_its_masks_through_the_kernel(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    whole = uninterrupted()
    m, out, mock = machine(monkeypatch)
    with m:
        assert m.spp is not None
        m.spp.protect_pages(MASKS)
        m.snapshot_at("sync:2")
        m.run(timeout=10)
        snap = m.snapshot()
        assert snap.spp_backend == "kernel:v12" and snap.spp == MASKS
        printed = out.getvalue()
        snap.save(str(tmp_path / "k.snap"))

        m.spp.protect_pages({0x300000: FULL_ACCESS, 0x400000: 0})  # changed after the snapshot
        m.restore(snap)
        assert {g: mock.mask(g) for g in (*MASKS, 0x400000)} == {**MASKS, 0x400000: FULL_ACCESS}
        assert m.spp.masks() == MASKS

    loaded = Snapshot.load(str(tmp_path / "k.snap"))
    assert loaded.spp_backend == "kernel:v12" and loaded.spp == MASKS
    m2, out2, mock2 = machine(monkeypatch)
    with m2:
        m2.restore(loaded)  # a new VM: every mask goes to its kernel
        assert {g: mock2.mask(g) for g in MASKS} == MASKS
        assert m2.run(timeout=10).status == 0
        assert printed + out2.getvalue() == whole


def test_a_kernel_backend_snapshot_is_not_restored_through_another_backend(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    m, _, _ = machine(monkeypatch)
    with m:
        assert m.spp is not None
        m.spp.protect_pages(MASKS)
        m.snapshot_at("sync:1")
        m.run(timeout=10)
        path = str(tmp_path / "k.snap")
        m.snapshot().save(path)

    soft, _, _ = machine(monkeypatch, "software")
    with soft, pytest.raises(SnapshotMismatch, match="kernel:v12 SPP backend, this machine has software") as e:
        soft.restore(Snapshot.load(path))
    assert status_of(e.value) == ExitStatus.SNAPSHOT_MISMATCH

    with pytest.raises(SnapshotHost, match="kernel:v12 SPP backend, which this host cannot give") as h:
        Machine.from_snapshot(path, log=io.StringIO())  # this kernel does not look patched
    assert status_of(h.value) == ExitStatus.SNAPSHOT_HOST
