"""QEMU 7.2's named CPU models (vmm.cpu.catalog) and the cache leaves (vmm.cpu.caches), shaped from a
KVM table: the values a guest reads, as QEMU 7.2 gives them (the expected words were read from a
guest under qemu-system-x86_64 7.2 with KVM), enforce/check, and QEMU's other spellings."""

from __future__ import annotations

import re

import pytest
from test_cpu_models import AMD, brand, supported

from vmm.cpu.catalog import MODELS
from vmm.cpu.models import FEATURES, Leaf, Table, for_vcpu, parse_cpu, shape
from vmm.errors import HostLacksFeature


def leaves(text: str, apic_id: int = 0, ncpus: int = 1) -> Table:
    t = shape(supported(), parse_cpu(text)).table
    return {(x.function, x.index): x for x in for_vcpu(t, apic_id, ncpus)}


def regs(leaf: Leaf) -> tuple[int, int, int, int]:
    return leaf.eax, leaf.ebx, leaf.ecx, leaf.edx


def test_every_model_lists_only_features_pyvmm_knows_and_none_twice() -> None:
    assert len(MODELS) >= 25
    for m in MODELS.values():
        assert set(m.features) <= set(FEATURES), m.name
        assert len(set(m.features)) == len(m.features), m.name


@pytest.mark.parametrize(
    ("name", "leaf1_eax", "level", "xlevel", "model_id"),
    [
        ("Skylake-Client", 0x000506E3, 0xD, 0x80000008, b"Intel Core Processor (Skylake)"),
        ("Penryn", 0x00010673, 0xA, 0x80000008, b"Intel Core 2 Duo P9xxx (Penryn Class Core 2)"),
        ("Opteron_G4", 0x00600F12, 0xD, 0x8000001A, b"AMD Opteron 62xx class CPU"),
        ("EPYC", 0x00800F12, 0xD, 0x8000001E, b"AMD EPYC Processor"),
        ("EPYC-Rome", 0x00830F10, 0xD, 0x8000001E, b"AMD EPYC-Rome Processor"),
    ],
)
def test_a_named_model_has_qemus_signature_on_the_host_vendor(
    name: str, leaf1_eax: int, level: int, xlevel: int, model_id: bytes
) -> None:
    t = shape(supported(), parse_cpu(name)).table
    assert t[(1, 0)].eax == t[(0x80000001, 0)].eax == leaf1_eax
    assert t[(0, 0)].eax == level and t[(0x80000000, 0)].eax == xlevel
    assert (t[(0, 0)].ebx, t[(0, 0)].ecx, t[(0, 0)].edx) == AMD  # QEMU under KVM: the host's vendor
    assert brand(t) == model_id


def test_only_the_models_features_that_kvm_offers_and_warnings_in_qemus_order() -> None:
    got = shape(supported(), parse_cpu("Skylake-Client"))
    t = got.table
    # of Skylake-Client's 1.ECX list this host offers cx16, x2apic, xsave and the hypervisor bit
    assert t[(1, 0)].ecx == 1 << 13 | 1 << 21 | 1 << 26 | 1 << 31
    assert t[(7, 0)].ebx == 1 << 7  # smep; the host's other bits are not Skylake's
    assert t[(0x80000008, 0)].ebx == 0 and t[(0x80000008, 0)].eax == 0x3028
    named = [w.rsplit(": ", 1)[1] for w in got.warnings]
    # pni first; the table above has no leaf 6, so arat is missing too, after the XSAVE word
    assert named[0] == "CPUID.01H:ECX.pni [bit 0]" and named[-2:] == [
        "CPUID.0DH:EAX.xgetbv1 [bit 2]", "CPUID.06H:EAX.arat [bit 2]"
    ]
    assert named.index("CPUID.07H:EBX.bmi1 [bit 3]") < named.index("CPUID.80000001H:ECX.abm [bit 5]")


def test_enforce_makes_a_dropped_model_feature_an_error_and_check_off_silences_the_warnings() -> None:
    with pytest.raises(HostLacksFeature, match=re.escape("Skylake-Client,enforce: this host's KVM cannot offer")):
        shape(supported(), parse_cpu("Skylake-Client,enforce"))
    assert shape(supported(), parse_cpu("Skylake-Client,check=off")).warnings == []
    shape(supported(), parse_cpu("host,enforce"))  # nothing to drop: no error


def test_qemus_v1_names_and_bare_feature_names() -> None:
    assert parse_cpu("Skylake-Client-v1").model == "Skylake-Client"
    req = parse_cpu("qemu64,x2apic,sse3=off,xd=on")
    assert [(f.name, on) for f, on in req.changes] == [("x2apic", True), ("pni", False), ("nx", True)]


def test_legacy_caches_on_an_intel_vendor_with_three_cpus() -> None:
    t = leaves("max,vendor=GenuineIntel", apic_id=1, ncpus=3)
    assert regs(t[(2, 0)]) == (1, 0, 0x4D, 0x002C307D)
    assert [regs(t[(4, i)]) for i in range(5)] == [
        (0x08000121, 0x01C0003F, 0x3F, 1),
        (0x08000122, 0x01C0003F, 0x3F, 1),
        (0x08000143, 0x03C0003F, 0xFFF, 1),
        (0x0800C163, 0x03C0003F, 0x3FFF, 6),
        (0, 0, 0, 0),
    ]
    assert [regs(t[(0x8000001D, i)])[0] for i in range(4)] == [0x121, 0x122, 0x43, 0x8163]
    assert regs(t[(0x80000005, 0)]) == (0x01FF01FF, 0x01FF01FF, 0x40020140, 0x40020140)
    assert regs(t[(0x80000006, 0)]) == (0, 0x42004200, 0x02008140, 0x00808140)


def test_no_intel_cache_leaves_on_an_amd_vendor() -> None:
    t = leaves("max", ncpus=2)
    assert regs(t[(2, 0)]) == (0, 0, 0, 0) and regs(t[(4, 0)]) == (0, 0, 0, 0)
    assert regs(t[(0x8000001D, 3)]) == (0x4163, 0x03C0003F, 0x3FFF, 6)


@pytest.mark.parametrize(
    ("name", "l1", "l2_l3", "l1i", "l3"),
    [
        ("EPYC", (0x20080140, 0x40040140), (0x02006140, 0x00408140), (0x122, 0x00C0003F, 0xFF, 1), 0x1FFF),
        ("EPYC-Rome", (0x20080140, 0x20080140), (0x02006140, 0x00808140), (0x122, 0x01C0003F, 0x3F, 1), 0x3FFF),
        ("EPYC-Milan", (0x20080140, 0x20080140), (0x02006140, 0x01008140), (0x122, 0x01C0003F, 0x3F, 1), 0x7FFF),
    ],
)
def test_the_epyc_models_own_caches(
    name: str, l1: tuple[int, int], l2_l3: tuple[int, int], l1i: tuple[int, int, int, int], l3: int
) -> None:
    t = leaves(name, ncpus=3)
    assert regs(t[(0x80000005, 0)])[2:] == l1 and regs(t[(0x80000006, 0)])[2:] == l2_l3
    assert regs(t[(0x8000001D, 1)]) == l1i and t[(0x8000001D, 3)].ecx == l3
    assert t[(0x8000001D, 2)].eax == 0x43 and t[(0x8000001D, 3)].eax == 0x8163
    intel = leaves(f"{name},vendor=GenuineIntel")
    assert intel[(2, 0)].ecx == {"EPYC": 0x4B, "EPYC-Rome": 0x4D, "EPYC-Milan": 0xFF}[name]
