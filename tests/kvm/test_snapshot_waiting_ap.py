"""An AP saved while it waits for its start-up IPI: mb-smp with sync-before-sipi makes a ucall
SYNC between each AP's INIT and its SIPIs, the run is cut at the Nth, and the snapshot holds AP N
in KVM_MP_STATE_INIT_RECEIVED (the APs before it started, the ones after it never touched).
Restored in a new process, the BSP sends that AP its SIPIs, the AP starts from the trampoline and
reports like the others: the outputs joined equal the uninterrupted run's, with its status.

KVM takes a waiting AP's state back only with the SIPI-vector flag set in its events and nothing
else changed: a flag written at the wrong offset marked it as in SMM, which KVM refuses for a vCPU
in INIT_RECEIVED (KVM_SET_VCPU_EVENTS fails with EINVAL).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GUESTS, ROOT

from kvm_abi import constants as kc
from vmm.snapshot.state import Snapshot

pytestmark = pytest.mark.kvm

KERNEL = str(GUESTS / "mb" / "mb-smp.elf")
STATUS = (0x14 << 1) | 1


def pyvmm(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "vmm.cli", *args], cwd=ROOT, capture_output=True, timeout=60,
                          env=dict(os.environ))  # fmt: skip


@pytest.mark.parametrize(("smp", "waiting"), [(2, 1), (4, 1), (4, 3)])
def test_an_ap_saved_waiting_for_its_sipi_starts_after_the_restore(smp: int, waiting: int, tmp_path: Path) -> None:
    args = [KERNEL, "-smp", str(smp), "-append", "sync-before-sipi"]
    whole = pyvmm("run", "-q", *args)
    assert whole.returncode == STATUS, whole.stderr.decode()
    assert f"smp: all {smp} cpus up".encode() in whole.stdout
    snap = tmp_path / "ap.snap"
    first = pyvmm("run", "-q", *args, "--snapshot-at", f"sync:{waiting}", "--snapshot-to", str(snap))
    assert first.returncode == 0, first.stderr.decode()

    states = [v.mp_state for v in Snapshot.load(str(snap)).vcpus]
    assert states[waiting] == kc.KVM_MP_STATE_INIT_RECEIVED, states
    assert all(s in (kc.KVM_MP_STATE_RUNNABLE, kc.KVM_MP_STATE_HALTED) for s in states[:waiting]), states
    assert all(s == kc.KVM_MP_STATE_UNINITIALIZED for s in states[waiting + 1 :]), states

    second = pyvmm("restore", "-q", str(snap))
    assert second.returncode == STATUS, second.stderr.decode()
    assert first.stdout + second.stdout == whole.stdout
    assert f"cpu {waiting} up (apic id {waiting})".encode() in second.stdout
