"""QEMU 7.2's named x86 CPU models, as target/i386/cpu.c defines them (the version-1 definition
each unversioned name stands for on the `pc` machines of 7.2), the parts a guest can see: vendor,
family/model/stepping, the maximum basic and extended leaves, the brand string, the features, and
the cache hierarchy (vmm.cpu.caches). The feature lists are what QEMU asks KVM for: the
definition plus what QEMU turns on for every model under KVM (x2apic, the hypervisor bit) and
minus what it turns off (svm, monitor, acpi); `query-cpu-model-expansion` of qemu-system-x86_64
7.2 gives the same lists.

Under KVM QEMU gives every named model the host's vendor string (so that the guest's
SYSENTER/SYSCALL match the host's); `vendor` is the definition's, used when `vendor=` is not given
only by `pyvmm info` and `-cpu help`.
"""

from __future__ import annotations

from vmm.record import TupleRecord

INTEL, AMD = "GenuineIntel", "AuthenticAMD"


class Model(TupleRecord):  # not a dataclass: the table is built at start-up (vmm.record)
    name: str
    vendor: str
    level: int
    xlevel: int
    family: int
    model: int
    stepping: int
    model_id: str
    features: tuple[str, ...]
    phys_bits: int = 40  # QEMU's default for named models (0x80000008 EAX[7:0])
    virt_bits: int = 48
    caches: str = "legacy"  # a key of vmm.cpu.caches.CACHE_MODELS


_PPRO = ("fpu", "de", "pse", "tsc", "msr", "mce", "cx8", "pge", "cmov", "pat", "fxsr", "mmx", "sse", "sse2",
         "pae", "sep", "apic")  # fmt: skip
# What QEMU turns on, and off, for every named model under KVM (kvm_default_props; the hypervisor bit)
KVM_DEFAULTS = ("x2apic", "hypervisor")
KVM_DEFAULTS_OFF = ("svm", "monitor", "acpi")


def _named(name: str, vendor: str, family: int, model: int, stepping: int, level: int, xlevel: int,
           model_id: str, features: str, caches: str = "legacy") -> Model:  # fmt: skip
    return Model(name, vendor, level, xlevel, family, model, stepping, model_id,
                 (*features.split(), *KVM_DEFAULTS), caches=caches)  # fmt: skip


_BUILTIN = [
    Model(
        "qemu64", AMD, 0xD, 0x8000000A, 15, 107, 1, "QEMU Virtual CPU version 2.5+",
        (*_PPRO, "mtrr", "clflush", "mca", "pse36", "pni", "cx16", "lm", "syscall", "nx", "lahf-lm", "svm",
         *KVM_DEFAULTS),
    ),
    Model(
        "kvm64", INTEL, 0xD, 0x80000008, 15, 6, 1, "Common KVM processor",
        (*_PPRO, "vme", "mtrr", "clflush", "mca", "pse36", "pni", "cx16", "lm", "syscall", "nx", *KVM_DEFAULTS),
    ),
    Model(
        "qemu32", INTEL, 4, 0x80000004, 6, 6, 3, "QEMU Virtual CPU version 2.5+", (*_PPRO, "pni", *KVM_DEFAULTS),
        phys_bits=36, virt_bits=32,
    ),
    Model(
        "kvm32", INTEL, 5, 0x80000008, 15, 6, 1, "Common 32-bit KVM processor",
        (*_PPRO, "vme", "mtrr", "clflush", "mca", "pse36", "pni", *KVM_DEFAULTS), phys_bits=36, virt_bits=32,
    ),
]  # fmt: skip

# The models test runners and CI configurations name, oldest first within each vendor
_NAMED = [
    _named("Conroe", INTEL, 6, 15, 3, 0xa, 0x80000008, 'Intel Celeron_4x0 (Conroe/Merom Class Core 2)',
        "apic clflush cmov cx8 de fpu fxsr lahf-lm lm mca mce mmx msr mtrr nx pae pat pge pni pse pse36 "
        "sep sse sse2 ssse3 syscall tsc vme"),
    _named("Penryn", INTEL, 6, 23, 3, 0xa, 0x80000008, 'Intel Core 2 Duo P9xxx (Penryn Class Core 2)',
        "apic clflush cmov cx16 cx8 de fpu fxsr lahf-lm lm mca mce mmx msr mtrr nx pae pat pge pni pse "
        "pse36 sep sse sse2 sse4.1 ssse3 syscall tsc vme"),
    _named("Nehalem", INTEL, 6, 26, 3, 0xb, 0x80000008, 'Intel Core i7 9xx (Nehalem Class Core i7)',
        "apic clflush cmov cx16 cx8 de fpu fxsr lahf-lm lm mca mce mmx msr mtrr nx pae pat pge pni popcnt "
        "pse pse36 sep sse sse2 sse4.1 sse4.2 ssse3 syscall tsc vme"),
    _named("Westmere", INTEL, 6, 44, 1, 0xb, 0x80000008, 'Westmere E56xx/L56xx/X56xx (Nehalem-C)',
        "aes apic arat clflush cmov cx16 cx8 de fpu fxsr lahf-lm lm mca mce mmx msr mtrr nx pae pat "
        "pclmulqdq pge pni popcnt pse pse36 sep sse sse2 sse4.1 sse4.2 ssse3 syscall tsc vme"),
    _named("SandyBridge", INTEL, 6, 42, 1, 0xd, 0x80000008, 'Intel Xeon E312xx (Sandy Bridge)',
        "aes apic arat avx clflush cmov cx16 cx8 de fpu fxsr lahf-lm lm mca mce mmx msr mtrr nx pae pat "
        "pclmulqdq pge pni popcnt pse pse36 rdtscp sep sse sse2 sse4.1 sse4.2 ssse3 syscall tsc "
        "tsc-deadline vme xsave xsaveopt"),
    _named("IvyBridge", INTEL, 6, 58, 9, 0xd, 0x80000008, 'Intel Xeon E3-12xx v2 (Ivy Bridge)',
        "aes apic arat avx clflush cmov cx16 cx8 de erms f16c fpu fsgsbase fxsr lahf-lm lm mca mce mmx "
        "msr mtrr nx pae pat pclmulqdq pge pni popcnt pse pse36 rdrand rdtscp sep smep sse sse2 sse4.1 "
        "sse4.2 ssse3 syscall tsc tsc-deadline vme xsave xsaveopt"),
    _named("Haswell", INTEL, 6, 60, 4, 0xd, 0x80000008, 'Intel Core Processor (Haswell)',
        "abm aes apic arat avx avx2 bmi1 bmi2 clflush cmov cx16 cx8 de erms f16c fma fpu fsgsbase fxsr "
        "hle invpcid lahf-lm lm mca mce mmx movbe msr mtrr nx pae pat pcid pclmulqdq pge pni popcnt pse "
        "pse36 rdrand rdtscp rtm sep smep sse sse2 sse4.1 sse4.2 ssse3 syscall tsc tsc-deadline vme xsave "
        "xsaveopt"),
    _named("Broadwell", INTEL, 6, 61, 2, 0xd, 0x80000008, 'Intel Core Processor (Broadwell)',
        "3dnowprefetch abm adx aes apic arat avx avx2 bmi1 bmi2 clflush cmov cx16 cx8 de erms f16c fma "
        "fpu fsgsbase fxsr hle invpcid lahf-lm lm mca mce mmx movbe msr mtrr nx pae pat pcid pclmulqdq "
        "pge pni popcnt pse pse36 rdrand rdseed rdtscp rtm sep smap smep sse sse2 sse4.1 sse4.2 ssse3 "
        "syscall tsc tsc-deadline vme xsave xsaveopt"),
    _named("Skylake-Client", INTEL, 6, 94, 3, 0xd, 0x80000008, 'Intel Core Processor (Skylake)',
        "3dnowprefetch abm adx aes apic arat avx avx2 bmi1 bmi2 clflush cmov cx16 cx8 de erms f16c fma "
        "fpu fsgsbase fxsr hle invpcid lahf-lm lm mca mce mmx movbe msr mtrr nx pae pat pcid pclmulqdq "
        "pge pni popcnt pse pse36 rdrand rdseed rdtscp rtm sep smap smep sse sse2 sse4.1 sse4.2 ssse3 "
        "syscall tsc tsc-deadline vme xgetbv1 xsave xsavec xsaveopt"),
    _named("Skylake-Server", INTEL, 6, 85, 4, 0xd, 0x80000008, 'Intel Xeon Processor (Skylake)',
        "3dnowprefetch abm adx aes apic arat avx avx2 avx512bw avx512cd avx512dq avx512f avx512vl bmi1 "
        "bmi2 clflush clflushopt clwb cmov cx16 cx8 de erms f16c fma fpu fsgsbase fxsr hle invpcid "
        "lahf-lm lm mca mce mmx movbe msr mtrr nx pae pat pcid pclmulqdq pdpe1gb pge pku pni popcnt pse "
        "pse36 rdrand rdseed rdtscp rtm sep smap smep sse sse2 sse4.1 sse4.2 ssse3 syscall tsc "
        "tsc-deadline vme xgetbv1 xsave xsavec xsaveopt"),
    _named("Cascadelake-Server", INTEL, 6, 85, 6, 0xd, 0x80000008, 'Intel Xeon Processor (Cascadelake)',
        "3dnowprefetch abm adx aes apic arat avx avx2 avx512bw avx512cd avx512dq avx512f avx512vl "
        "avx512vnni bmi1 bmi2 clflush clflushopt clwb cmov cx16 cx8 de erms f16c fma fpu fsgsbase fxsr "
        "hle invpcid lahf-lm lm mca mce mmx movbe msr mtrr nx pae pat pcid pclmulqdq pdpe1gb pge pku pni "
        "popcnt pse pse36 rdrand rdseed rdtscp rtm sep smap smep spec-ctrl ssbd sse sse2 sse4.1 sse4.2 "
        "ssse3 syscall tsc tsc-deadline vme xgetbv1 xsave xsavec xsaveopt"),
    _named("Icelake-Server", INTEL, 6, 134, 0, 0xd, 0x80000008, 'Intel Xeon Processor (Icelake)',
        "3dnowprefetch abm adx aes apic arat avx avx2 avx512-vpopcntdq avx512bitalg avx512bw avx512cd "
        "avx512dq avx512f avx512vbmi avx512vbmi2 avx512vl avx512vnni bmi1 bmi2 clflush clflushopt clwb "
        "cmov cx16 cx8 de erms f16c fma fpu fsgsbase fxsr gfni hle invpcid la57 lahf-lm lm mca mce mmx "
        "movbe msr mtrr nx pae pat pcid pclmulqdq pdpe1gb pge pku pni popcnt pse pse36 rdrand rdseed "
        "rdtscp rtm sep smap smep spec-ctrl ssbd sse sse2 sse4.1 sse4.2 ssse3 syscall tsc tsc-deadline "
        "umip vaes vme vpclmulqdq wbnoinvd xgetbv1 xsave xsavec xsaveopt"),
    _named("core2duo", INTEL, 6, 15, 11, 0xa, 0x80000008, 'Intel(R) Core(TM)2 Duo CPU     T7700  @ 2.40GHz',
        "apic clflush cmov cx16 cx8 de fpu fxsr lahf-lm lm mca mce mmx msr mtrr nx pae pat pge pni pse "
        "pse36 sep ss sse sse2 ssse3 syscall tsc vme"),
    _named("Opteron_G1", AMD, 15, 6, 1, 0x5, 0x80000008, 'AMD Opteron 240 (Gen 1 Class Opteron)',
        "apic clflush cmov cx8 de fpu fxsr lm mca mce mmx msr mtrr nx pae pat pge pni pse pse36 sep sse "
        "sse2 syscall tsc vme"),
    _named("Opteron_G2", AMD, 15, 6, 1, 0x5, 0x80000008, 'AMD Opteron 22xx (Gen 2 Class Opteron)',
        "apic clflush cmov cx16 cx8 de fpu fxsr lahf-lm lm mca mce mmx msr mtrr nx pae pat pge pni pse "
        "pse36 sep sse sse2 syscall tsc vme"),
    _named("Opteron_G3", AMD, 16, 2, 3, 0x5, 0x80000008, 'AMD Opteron 23xx (Gen 3 Class Opteron)',
        "abm apic clflush cmov cx16 cx8 de fpu fxsr lahf-lm lm mca mce misalignsse mmx msr mtrr nx pae "
        "pat pge pni popcnt pse pse36 rdtscp sep sse sse2 sse4a syscall tsc vme"),
    _named("Opteron_G4", AMD, 21, 1, 2, 0xd, 0x8000001a, 'AMD Opteron 62xx class CPU',
        "3dnowprefetch abm aes apic avx clflush cmov cx16 cx8 de fma4 fpu fxsr lahf-lm lm mca mce "
        "misalignsse mmx msr mtrr nx pae pat pclmulqdq pdpe1gb pge pni popcnt pse pse36 rdtscp sep sse "
        "sse2 sse4.1 sse4.2 sse4a ssse3 syscall tsc vme xop xsave"),
    _named("Opteron_G5", AMD, 21, 2, 0, 0xd, 0x8000001a, 'AMD Opteron 63xx class CPU',
        "3dnowprefetch abm aes apic avx clflush cmov cx16 cx8 de f16c fma fma4 fpu fxsr lahf-lm lm mca "
        "mce misalignsse mmx msr mtrr nx pae pat pclmulqdq pdpe1gb pge pni popcnt pse pse36 rdtscp sep "
        "sse sse2 sse4.1 sse4.2 sse4a ssse3 syscall tbm tsc vme xop xsave"),
    _named("EPYC", AMD, 23, 1, 2, 0xd, 0x8000001e, 'AMD EPYC Processor',
        "3dnowprefetch abm adx aes apic arat avx avx2 bmi1 bmi2 clflush clflushopt cmov cr8legacy cx16 "
        "cx8 de f16c fma fpu fsgsbase fxsr fxsr-opt lahf-lm lm mca mce misalignsse mmx mmxext movbe msr "
        "mtrr nx osvw pae pat pclmulqdq pdpe1gb pge pni popcnt pse pse36 rdrand rdseed rdtscp sep sha-ni "
        "smap smep sse sse2 sse4.1 sse4.2 sse4a ssse3 syscall topoext tsc vme xgetbv1 xsave xsavec "
        "xsaveopt",
        caches="epyc"),
    _named("EPYC-Rome", AMD, 23, 49, 0, 0xd, 0x8000001e, 'AMD EPYC-Rome Processor',
        "3dnowprefetch abm adx aes amd-stibp apic arat avx avx2 bmi1 bmi2 clflush clflushopt clwb clzero "
        "cmov cr8legacy cx16 cx8 de f16c fma fpu fsgsbase fxsr fxsr-opt ibpb lahf-lm lm mca mce "
        "misalignsse mmx mmxext movbe msr mtrr nx osvw pae pat pclmulqdq pdpe1gb perfctr-core pge pni "
        "popcnt pse pse36 rdpid rdrand rdseed rdtscp sep sha-ni smap smep sse sse2 sse4.1 sse4.2 sse4a "
        "ssse3 syscall topoext tsc umip vme wbnoinvd xgetbv1 xsave xsavec xsaveerptr xsaveopt xsaves",
        caches="epyc-rome"),
    _named("EPYC-Milan", AMD, 25, 1, 1, 0xd, 0x8000001e, 'AMD EPYC-Milan Processor',
        "3dnowprefetch abm adx aes amd-ssbd amd-stibp apic arat avx avx2 bmi1 bmi2 clflush clflushopt "
        "clwb clzero cmov cr8legacy cx16 cx8 de erms f16c fma fpu fsgsbase fsrm fxsr fxsr-opt ibpb ibrs "
        "invpcid lahf-lm lm mca mce misalignsse mmx mmxext movbe msr mtrr nx osvw pae pat pcid pclmulqdq "
        "pdpe1gb perfctr-core pge pku pni popcnt pse pse36 rdpid rdrand rdseed rdtscp sep sha-ni smap "
        "smep sse sse2 sse4.1 sse4.2 sse4a ssse3 syscall topoext tsc umip vme wbnoinvd xgetbv1 xsave "
        "xsavec xsaveerptr xsaveopt xsaves",
        caches="epyc-milan"),
]  # fmt: skip

MODELS: dict[str, Model] = {m.name: m for m in (*_BUILTIN, *_NAMED)}
# QEMU's explicit version-1 names for the same definitions
VERSION_1 = {f"{m.name}-v1": m.name for m in _NAMED}
