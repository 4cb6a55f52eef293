"""-cpu models shaped from a KVM-supported table: QEMU's named models, +feat/-feat/feat=on|off,
vendor= and phys-bits, a feature KVM cannot offer refused by name, and spelling errors."""

from __future__ import annotations

import re

import pytest

from vmm.cpu.models import FEATURES, Leaf, Table, feature, for_vcpu, parse_cpu, shape
from vmm.errors import ConfigError, HostLacksFeature

AMD = (0x68747541, 0x444D4163, 0x69746E65)  # ebx, ecx, edx of "AuthenticAMD"


def supported() -> Table:
    """An AMD host's table: x2apic, cx16, xsave offered; pni, svm, la57 not."""
    leaves = [
        Leaf(0, 0, 0, 0x10, AMD[0], AMD[1], AMD[2]),
        Leaf(1, 0, 0, 0x00A10F11, 0x00100800, 1 << 21 | 1 << 13 | 1 << 26 | 1 << 31, 0x178BFBFF),
        Leaf(7, 0, 1, 0, 1 << 7, 1 << 2 | 1 << 3, 1 << 29),
        Leaf(0xB, 0, 1, 1, 2, 0x100, 0),
        Leaf(0xD, 0, 1, 7, 0x340, 0x340, 0),
        Leaf(0x80000000, 0, 0, 0x80000021, AMD[0], AMD[1], AMD[2]),
        Leaf(0x80000001, 0, 0, 0x00A10F11, 0x40000000, 0x1 | 1 << 22, 0x2FD3FBFF),
        Leaf(0x80000007, 0, 0, 0, 0, 0, 1 << 8),  # invtsc
        Leaf(0x80000008, 0, 0, 0x3030, 0x10000005, 0x7001, 0),  # clzero, xsaveerptr, bit 28
        Leaf(0x80000021, 0, 0, 0x45, 0, 0, 0),
    ]
    return {(leaf.function, leaf.index): leaf for leaf in leaves}


def test_host_and_max_are_what_kvm_offers_of_the_features_qemu_names() -> None:
    for model in ("host", "max"):
        got = shape(supported(), parse_cpu(model), host_brand="AMD EPYC 7B13")
        t, kvm = got.table, supported()
        assert got.warnings == []
        for key in [(0, 0), (1, 0), (7, 0), (0xB, 0), (0xD, 0), (0x80000021, 0)]:
            assert t[key] == kvm[key]
        assert t[(0x80000001, 0)].ecx == 0x1  # lahf-lm; topoext (bit 22) is never turned on by itself
        assert t[(0x80000008, 0)].ebx == 0x5  # clzero, xsaveerptr; bit 28, unknown to QEMU 7.2, clear
        assert t[(0x80000007, 0)].edx == 0  # no invtsc: QEMU's max is migratable
        assert brand(t) == b"AMD EPYC 7B13"


def test_max_not_migratable_is_every_bit_kvm_offers_but_topoext() -> None:
    t = shape(supported(), parse_cpu("max,migratable=off")).table
    assert t[(0x80000008, 0)].ebx == 0x10000005  # bit 28 too, which QEMU 7.2 has no name for
    assert t[(0x80000001, 0)].ecx == 0x1 and t[(0x80000007, 0)].edx == 1 << 8


def brand(t: Table) -> bytes:
    return b"".join(
        w.to_bytes(4, "little") for f in (0x80000002, 0x80000003, 0x80000004) for w in
        (t[(f, 0)].eax, t[(f, 0)].ebx, t[(f, 0)].ecx, t[(f, 0)].edx)
    ).rstrip(b"\0")  # fmt: skip


def test_qemu64_is_qemus_definition_on_the_host_vendor_minus_what_kvm_lacks() -> None:
    got = shape(supported(), parse_cpu("qemu64"))
    t = got.table
    assert t[(0, 0)].eax == 0xD and (t[(0, 0)].ebx, t[(0, 0)].ecx, t[(0, 0)].edx) == AMD
    assert t[(1, 0)].eax == 0x00060FB1  # family 15, model 107, stepping 1
    assert t[(0x80000000, 0)].eax == 0x8000000A and (0x80000021, 0) not in t
    assert brand(t) == b"QEMU Virtual CPU version 2.5+"
    assert t[(0x80000008, 0)].eax == 0x3028  # 48 virtual, 40 physical address bits
    assert t[(7, 0)].ebx == 0 and t[(0x80000001, 0)].ebx == 0
    assert got.warnings == ["warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]"]
    # the AMD aliases of 1.EDX in 0x80000001.EDX follow the model: no VME there
    assert not t[(0x80000001, 0)].edx & 1 << 1 and t[(0x80000001, 0)].edx & 1 << 29  # lm


def test_feature_changes_in_order_and_vendor_and_phys_bits() -> None:
    t = shape(supported(), parse_cpu("qemu64,+xsave,-x2apic,cx16=off,vendor=GenuineIntel,host-phys-bits=on")).table
    assert t[(1, 0)].ecx & 1 << 26 and not t[(1, 0)].ecx & 1 << 21 and not t[(1, 0)].ecx & 1 << 13
    assert (t[(0, 0)].ebx, t[(0, 0)].edx, t[(0, 0)].ecx) == (0x756E6547, 0x49656E69, 0x6C65746E)
    assert t[(0x80000008, 0)].eax & 0xFF == 0x30
    t = shape(supported(), parse_cpu("max,-arch-capabilities,-umip")).table
    assert t[(7, 0)].edx == 0 and t[(7, 0)].ecx == 1 << 3


@pytest.mark.parametrize(
    ("text", "name", "where"),
    [("max,+la57", "la57", "CPUID.07H:ECX.la57 [bit 16]"), ("qemu64,svm=on", "svm", "CPUID.80000001H:ECX.svm")],
)
def test_a_feature_kvm_cannot_offer_is_one_line_naming_it(text: str, name: str, where: str) -> None:
    with pytest.raises(HostLacksFeature, match=re.escape(f"cannot offer {name} ({where}")):
        shape(supported(), parse_cpu(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Skylake-Server-v4", "-cpu Skylake-Server-v4: unknown or unsupported CPU model"),
        ("EPYC-Genoa", "-cpu EPYC-Genoa: unknown or unsupported CPU model"),
        ("max,+bogus", "unknown CPU feature 'bogus'"),
        ("max,vendor=HygonGenuine", "vendor=HygonGenuine"),
        ("max,x2apic=maybe", "the value is on or off"),
        ("max,phys-bits=99", "outside"),
        ("max,pmu=off", "-cpu pmu=off is not supported"),
        ("max,enforce=maybe", "the value is on or off"),
    ],
)
def test_bad_requests_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_cpu(text)


def test_qemu_names_and_spellings() -> None:
    for name in ("x2apic", "tsc-deadline", "umip", "pku", "la57", "cx16", "xsave", "svm", "vmx", "sse4.1"):
        assert name in FEATURES
    assert feature("sse4_1") is FEATURES["sse4.1"] and feature("tsc_deadline") is FEATURES["tsc-deadline"]


def test_topology_per_vcpu_keeps_each_apic_id() -> None:
    t = shape(supported(), parse_cpu("qemu64")).table
    t[(0, 0)].eax = 0xB  # let 0xB through for this check
    t[(0xB, 0)] = Leaf(0xB, 0, 1)
    for apic in range(3):
        leaves = {(x.function, x.index): x for x in for_vcpu(t, apic, 3)}
        assert leaves[(1, 0)].ebx >> 16 == apic << 8 | 3
        assert [leaves[(0xB, i)].edx for i in range(3)] == [apic] * 3
        assert leaves[(0xB, 1)].eax == 2 and leaves[(0xB, 1)].ebx == 3
        assert leaves[(0x80000008, 0)].ecx == 2 << 12 | 2
        assert leaves[(0x80000001, 0)].ecx & 1 << 1  # CmpLegacy on AMD with several CPUs
