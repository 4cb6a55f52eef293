"""The XSAVE area through KVM_GET_XSAVE2: as many bytes as KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)
reports on the VM (4096 on the project's hosts, whose CPUs have no AMX: the area fits in the 4 KiB
struct kvm_xsave, so this host can show the path, not an area past 4 KiB). The bytes agree with
KVM_GET_XSAVE's, go back through KVM_SET_XSAVE, and a snapshot whose area is larger restores when
nothing but zeros lies past this host's size, and is refused with status 48 otherwise."""

from __future__ import annotations

import dataclasses
import io

import pytest
from conftest import guest

from kvm_abi import caps, ffi
from vmm import CpuMode, Machine
from vmm.errors import ExitStatus, SnapshotHost, status_of
from vmm.snapshot import Snapshot

pytestmark = pytest.mark.kvm

XMM0 = 160  # offset of XMM0 in the legacy FXSAVE region
XSTATE_BV = 512  # the XSAVE header's component bitmap: bit 1, SSE state present


def machine() -> Machine:
    m = Machine(16 << 20, console=io.BytesIO(), log=io.StringIO())
    m.load_flat(guest("snap-long").read_bytes(), CpuMode.LONG)
    return m


def test_the_area_is_read_with_xsave2_at_the_size_kvm_reports() -> None:
    with machine() as m:
        reported = m.board.vm.check_extension(caps.KVM_CAP_XSAVE2)
        if reported == 0:
            pytest.skip("this host's KVM has no KVM_CAP_XSAVE2")
        assert reported >= 4096
        vcpu = m.vcpus[0]
        assert vcpu.xsave_size == reported
        area = vcpu.get_raw("xsave")
        assert len(area) == reported
        assert area[:4096] == bytes(ffi.buffer(vcpu.get_xsave()))  # the plain 4 KiB call agrees

        changed = bytearray(area)
        changed[XMM0 : XMM0 + 16] = bytes(range(0x40, 0x50))
        changed[XSTATE_BV] |= 2
        vcpu.set_raw("xsave", bytes(changed))
        assert bytes(ffi.buffer(vcpu.get_xsave()))[XMM0 : XMM0 + 16] == bytes(range(0x40, 0x50))
        assert vcpu.get_raw("xsave") == bytes(changed)


def _with_area(snap: Snapshot, extra: bytes) -> Snapshot:
    vcpus = [dataclasses.replace(v, raw={**v.raw, "xsave": v.raw["xsave"] + extra}) for v in snap.vcpus]
    return dataclasses.replace(snap, vcpus=vcpus)


def test_a_larger_saved_area_restores_if_only_zeros_lie_past_this_hosts_size() -> None:
    with machine() as m:
        whole_status = None
        m.snapshot_at("sync:3")
        m.run(timeout=10)
        snap = m.snapshot()
        out = io.BytesIO()
        with Machine.from_snapshot(_with_area(snap, bytes(8192)), console=out, log=io.StringIO()) as r:
            assert r.vcpus[0].get_raw("xsave") == snap.vcpus[0].raw["xsave"]
            whole_status = r.run(timeout=10).status
        assert whole_status == 0 and out.getvalue().endswith(b"rounds done\n")

        with pytest.raises(SnapshotHost, match="XSAVE state past this host's") as e:
            Machine.from_snapshot(_with_area(snap, bytes(4096) + b"\x01"), log=io.StringIO())
        assert status_of(e.value) == ExitStatus.SNAPSHOT_HOST
