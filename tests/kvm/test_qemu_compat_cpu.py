"""-cpu through a kernel that prints CPUID leaves (guests/mb/mb-cpuid.c) on 2 CPUs, under QEMU and
pyvmm. For the named models the whole output must be the same on one host; for `max` (QEMU 7.2
needs `,-arch-capabilities` here, see guests/README.md) only what the machine defines, the
topology (`-append topology`): pyvmm's `max` is KVM's table, QEMU's adds the host's brand string
and cache leaves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import GUESTS, pyvmm
from test_qemu_compat_multiboot import Case, run_pyvmm, run_qemu, status

from vmm.cpu.cpuid import table_from_kvm
from vmm.cpu.models import FEATURES, feature_offered
from vmm.errors import ExitStatus
from vmm.kvm.system import Kvm

pytestmark = pytest.mark.kvm


@dataclass(frozen=True)
class CpuCase(Case):
    cpu: str = "qemu64"

    def qemu_args(self) -> list[str]:
        return [*super().qemu_args(), "-cpu", self.cpu]

    def pyvmm_args(self) -> list[str]:
        return [*super().pyvmm_args(), "-cpu", self.cpu]


CASES = [
    CpuCase("qemu64", "mb-cpuid.elf", smp=2, cpu="qemu64"),
    CpuCase("kvm64", "mb-cpuid.elf", smp=2, cpu="kvm64"),
    CpuCase("max-topology", "mb-cpuid.elf", smp=2, cpu="max,-arch-capabilities", append="topology"),
    CpuCase("qemu64-topology-3", "mb-cpuid.elf", smp=3, cpu="qemu64", append="topology"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_pyvmm_matches_qemu(case: CpuCase) -> None:
    want = run_qemu(case)
    assert want.status == status(0x18), want.serial + want.stderr.encode()
    got = run_pyvmm(case)
    assert got.serial.decode() == want.serial.decode(), got.stderr
    assert got.status == want.status


def test_named_model_as_qemu_defines_it() -> None:
    got = run_pyvmm(CASES[0])
    text = got.serial.decode()
    assert "00000001.0: eax 0x00060fb1" in text and 'brand "QEMU Virtual CPU version 2.5+"' in text
    assert "warning: host doesn't support requested feature" in got.stderr  # as QEMU warns


def test_a_feature_kvm_cannot_offer_is_refused_by_name() -> None:
    kvm = Kvm()
    try:
        table = table_from_kvm(kvm.supported_cpuid())
    finally:
        kvm.close()
    wanted = [FEATURES[n] for n in ("la57", "pks", "amx-tile", "avx512-fp16", "sgx")]
    lacking = [f for f in wanted if not feature_offered(table, f)]
    if not lacking:
        pytest.skip("this host's KVM offers every feature the test would ask for")
    f = lacking[0]
    proc = pyvmm("run", str(GUESTS / "mb" / "mb-cpuid.elf"), "-cpu", f"max,+{f.name}")
    err = proc.stderr.decode().splitlines()
    assert proc.returncode == ExitStatus.HOST_LACKS_FEATURE == 70
    assert err == [f"pyvmm: -cpu max: this host's KVM cannot offer {f.name} ({f.describe()})"]
    assert proc.stdout == b""
