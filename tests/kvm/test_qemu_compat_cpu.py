"""-cpu through a kernel that prints CPUID leaves (guests/mb/mb-cpuid.c) on 2 CPUs, under QEMU and
pyvmm: the whole output must be the same on one host, for every named model pyvmm has (all of them
run on any host: QEMU and pyvmm drop, with a warning, the features KVM cannot offer) and for
`max` and `host` (QEMU 7.2 needs `,-arch-capabilities` for those here, see guests/README.md);
`-append caches` compares the brand string and the cache leaves (2, 4, 0x80000005/6,
0x8000001D), also with an Intel vendor on this host, where leaves 2 and 4 are not zero."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import GUESTS, pyvmm
from test_qemu_compat_multiboot import Case, run_pyvmm, run_qemu, status

from vmm.cpu.catalog import MODELS
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


MAX = "max,-arch-capabilities"
CASES = [
    CpuCase("qemu64", "mb-cpuid.elf", smp=2, cpu="qemu64"),
    CpuCase("kvm64", "mb-cpuid.elf", smp=2, cpu="kvm64"),
    CpuCase("max", "mb-cpuid.elf", smp=2, cpu=MAX),
    CpuCase("host", "mb-cpuid.elf", smp=2, cpu="host,-arch-capabilities"),
    CpuCase("max-not-migratable", "mb-cpuid.elf", smp=2, cpu=f"{MAX},migratable=off"),  # invtsc, all of KVM's
    CpuCase("qemu64-topology-3", "mb-cpuid.elf", smp=3, cpu="qemu64", append="topology"),
    CpuCase("max-topology-3", "mb-cpuid.elf", smp=3, cpu=MAX, append="topology"),  # with 0x8000001e
    CpuCase("EPYC-Rome-topology-3", "mb-cpuid.elf", smp=3, cpu="EPYC-Rome", append="topology"),
    *(CpuCase(name, "mb-cpuid.elf", smp=2, cpu=name) for name in MODELS if name[-2:] not in ("32", "64")),
    CpuCase("max-caches-3", "mb-cpuid.elf", smp=3, cpu=MAX, append="caches"),
    CpuCase("max-intel-caches-3", "mb-cpuid.elf", smp=3, cpu=f"{MAX},vendor=GenuineIntel", append="caches"),
    CpuCase("Skylake-Client-intel-caches", "mb-cpuid.elf", smp=2, cpu="Skylake-Client,vendor=GenuineIntel",
            append="caches"),
    *(CpuCase(f"{name}-caches-3", "mb-cpuid.elf", smp=3, cpu=name, append="caches")
      for name in ("EPYC", "EPYC-Rome", "EPYC-Milan")),
    CpuCase("EPYC-intel-caches", "mb-cpuid.elf", smp=1, cpu="EPYC,vendor=GenuineIntel", append="caches"),
]  # fmt: skip


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


def test_max_has_the_hosts_brand_string() -> None:
    text = run_pyvmm(next(c for c in CASES if c.id == "max-caches-3")).serial.decode()
    names = [ln for ln in text.splitlines() if ln.startswith("  vendor ")]
    assert len(names) == 3
    brand = names[-1].split(" brand ", 1)[1]
    with open("/proc/cpuinfo") as f:
        model_name = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    assert brand == f'"{model_name}"'


def test_enforce_makes_a_dropped_model_feature_status_70() -> None:
    """QEMU's default drops a model's feature KVM lacks with a warning; with `enforce` it refuses
    to start. pyvmm: the warning, or with `enforce` one line and HOST_LACKS_FEATURE."""
    warned = pyvmm("run", str(GUESTS / "mb" / "mb-cpuid.elf"), "-cpu", "Icelake-Server", "--append", "topology")
    warnings = [ln for ln in warned.stderr.decode().splitlines() if "warning: host doesn't support" in ln]
    assert warned.returncode == status(0x18) and warnings
    proc = pyvmm("run", str(GUESTS / "mb" / "mb-cpuid.elf"), "-cpu", "Icelake-Server,enforce")
    err = proc.stderr.decode().splitlines()
    assert proc.returncode == ExitStatus.HOST_LACKS_FEATURE == 70 and proc.stdout == b""
    first = warnings[0].rsplit(": ", 1)[1]
    assert len(err) == 1 and err[0].startswith("pyvmm: -cpu Icelake-Server,enforce: this host's KVM cannot offer ")
    assert f"({first})" in err[0]


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
