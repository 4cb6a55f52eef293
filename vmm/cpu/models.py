"""CPU models for QEMU's `-cpu`: a CPUID table shaped from what KVM offers (KVM_GET_SUPPORTED_CPUID),
as QEMU shapes it with KVM.

- `host` and `max`: everything KVM offers, as it reports it.
- `qemu64`, `kvm64`: QEMU's definitions (family, model, stepping, maximum leaves, brand, the
  features they list) with the host's vendor, as QEMU gives named models under KVM; a listed
  feature KVM cannot offer is dropped with one warning line, as QEMU does.
- `+feat`, `-feat`, `feat=on|off`: QEMU's feature names. Asking for a feature KVM cannot offer is
  an error naming it (HostLacksFeature), never a silent drop.
- `vendor=`, `host-phys-bits=on`, `phys-bits=N`, `level=`, `xlevel=`, `model-id=`: as QEMU.
- The topology QEMU gives `-smp N` (one thread per core, N cores): leaf 1 EBX[23:16] and HTT, and
  leaf 0xB's subleaves, with each vCPU's APIC id in 1.EBX[31:24] and 0xB.EDX (`for_vcpu`).

Everything here is pure: a table is a dict of `Leaf`s keyed by (function, index).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from vmm.cpu import caches
from vmm.errors import ConfigError, HostLacksFeature
from vmm.numbers import parse_on_off
from vmm.record import Record, TupleRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from vmm.cpu.catalog import Model

Reg = str  # "eax", "ebx", "ecx", "edx"


class Leaf(Record):
    """One CPUID entry (KVM's struct kvm_cpuid_entry2 without its padding)."""

    __slots__ = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")  # noqa: RUF023 (the repr's order)

    def __init__(self, function: int, index: int, flags: int, eax: int = 0, ebx: int = 0, ecx: int = 0,
                 edx: int = 0) -> None:  # fmt: skip
        self.function, self.index, self.flags = function, index, flags
        self.eax, self.ebx, self.ecx, self.edx = eax, ebx, ecx, edx

    def copy(self) -> Leaf:
        # replace() would do, at 6x the cost: every run copies the whole table (about 60 leaves) twice
        return Leaf(self.function, self.index, self.flags, self.eax, self.ebx, self.ecx, self.edx)

    def get(self, reg: Reg) -> int:
        return int(getattr(self, reg))

    def set(self, reg: Reg, value: int) -> None:
        setattr(self, reg, value & 0xFFFFFFFF)


Table = dict[tuple[int, int], Leaf]
SIGNIFICANT_INDEX = 1  # KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the subleaf matters

# (function, index, register): QEMU's feature words that hold named features
W1_EDX, W1_ECX = (1, 0, "edx"), (1, 0, "ecx")
W7_EBX, W7_ECX, W7_EDX = (7, 0, "ebx"), (7, 0, "ecx"), (7, 0, "edx")
WX_EDX, WX_ECX = (0x80000001, 0, "edx"), (0x80000001, 0, "ecx")
WD1_EAX = (0xD, 1, "eax")
W6_EAX = (6, 0, "eax")
WX7_EDX, WX8_EBX = (0x80000007, 0, "edx"), (0x80000008, 0, "ebx")

# QEMU 7.2's names, bit by bit (target/i386/cpu.c feature_word_info); None where 7.2 has none (so
# `max` leaves those bits clear, as QEMU 7.2 does, even where KVM offers them)
_WORDS: dict[tuple[int, int, str], list[str | None]] = {
    W1_EDX: ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", None, "sep", "mtrr", "pge",
             "mca", "cmov", "pat", "pse36", "pn", "clflush", None, "ds", "acpi", "mmx", "fxsr", "sse", "sse2",
             "ss", "ht", "tm", "ia64", "pbe"],
    W1_ECX: ["pni", "pclmulqdq", "dtes64", "monitor", "ds-cpl", "vmx", "smx", "est", "tm2", "ssse3", "cid",
             None, "fma", "cx16", "xtpr", "pdcm", None, "pcid", "dca", "sse4.1", "sse4.2", "x2apic", "movbe",
             "popcnt", "tsc-deadline", "aes", "xsave", None, "avx", "f16c", "rdrand", "hypervisor"],
    W7_EBX: ["fsgsbase", "tsc-adjust", "sgx", "bmi1", "hle", "avx2", None, "smep", "bmi2", "erms",
             "invpcid", "rtm", None, None, "mpx", None, "avx512f", "avx512dq", "rdseed", "adx", "smap",
             "avx512ifma", "pcommit", "clflushopt", "clwb", "intel-pt", "avx512pf", "avx512er", "avx512cd", "sha-ni",
             "avx512bw", "avx512vl"],
    W7_ECX: [None, "avx512vbmi", "umip", "pku", None, "waitpkg", "avx512vbmi2", None, "gfni", "vaes",
             "vpclmulqdq", "avx512vnni", "avx512bitalg", None, "avx512-vpopcntdq", None, "la57", None, None,
             None, None, None, "rdpid", None, "bus-lock-detect", "cldemote", None, "movdiri", "movdir64b", None,
             "sgxlc", "pks"],
    W7_EDX: [None, None, "avx512-4vnniw", "avx512-4fmaps", "fsrm", None, None, None, "avx512-vp2intersect",
             None, "md-clear", None, None, None, "serialize", None, "tsx-ldtrk", None, None, "arch-lbr",
             None, None, "amx-bf16", "avx512-fp16", "amx-tile", "amx-int8", "spec-ctrl", "stibp", None,
             "arch-capabilities", "core-capability", "ssbd"],
    WX_EDX: [None, None, None, None, None, None, None, None, None, None, None, "syscall", None, None, None,
             None, None, None, None, None, "nx", None, "mmxext", None, None, "fxsr-opt", "pdpe1gb", "rdtscp",
             None, "lm", "3dnowext", "3dnow"],
    WX_ECX: ["lahf-lm", "cmp-legacy", "svm", "extapic", "cr8legacy", "abm", "sse4a", "misalignsse",
             "3dnowprefetch", "osvw", "ibs", "xop", "skinit", "wdt", None, "lwp", "fma4", "tce", None,
             "nodeid-msr", None, "tbm", "topoext", "perfctr-core", "perfctr-nb", None, None, None, None, None,
             None, None],
    WD1_EAX: ["xsaveopt", "xsavec", "xgetbv1", "xsaves"] + [None] * 28,
    W6_EAX: [None, None, "arat"] + [None] * 29,
    WX7_EDX: [None] * 8 + ["invtsc"] + [None] * 23,
    WX8_EBX: ["clzero", None, "xsaveerptr", None, None, None, None, None, None, "wbnoinvd", None, None, "ibpb",
              None, "ibrs", "amd-stibp", None, None, None, None, None, None, None, None, "amd-ssbd",
              "virt-ssbd", "amd-no-ssb", None, None, None, None, None],
}  # fmt: skip

# The order of QEMU's feature words (its FeatureWord enumeration), in which it reports them
_WARNING_ORDER = [W1_EDX, W1_ECX, W7_EBX, W7_ECX, W7_EDX, WX_EDX, WX_ECX, WX7_EDX, WX8_EBX, WD1_EAX, W6_EAX]

# QEMU's other spellings of the same features
_ALIASES = {"sse4-1": "sse4.1", "sse4-2": "sse4.2", "sse4_1": "sse4.1", "sse4_2": "sse4.2", "i64": "lm",
            "ds_cpl": "ds-cpl", "lahf_lm": "lahf-lm", "tsc_deadline": "tsc-deadline",
            "sha": "sha-ni", "pclmuldq": "pclmulqdq", "ffxsr": "fxsr-opt", "sse3": "pni", "xd": "nx",
            "perfctr_core": "perfctr-core", "fxsr_opt": "fxsr-opt"}  # fmt: skip


class Feature(TupleRecord):
    name: str
    word: tuple[int, int, str]
    bit: int

    def describe(self) -> str:
        """As QEMU names a feature in its warnings (no subleaf: "CPUID.07H:EBX.smep [bit 7]")."""
        function, _, reg = self.word
        return f"CPUID.{function:02X}H:{reg.upper()}.{self.name} [bit {self.bit}]"


FEATURES: dict[str, Feature] = {
    name: Feature(name, word, bit)
    for word, names in _WORDS.items()
    for bit, name in enumerate(names)
    if name is not None
}


def feature(name: str) -> Feature:
    key = name.replace("_", "-").lower()
    key = _ALIASES.get(key, _ALIASES.get(name, key))
    if key not in FEATURES:
        raise ConfigError(f"-cpu: unknown CPU feature {name!r} (pyvmm info lists the feature names)")
    return FEATURES[key]


# What QEMU turns off for every named model under KVM (its own list has no effect then)
# 0x80000001 EDX bits that mirror 1.EDX on AMD (QEMU's CPUID_EXT2_AMD_ALIASES)
AMD_ALIASES = 0x0183F3FF
AMD_VENDOR_EBX = 0x68747541  # "Auth"
INTEL_VENDOR_EBX = 0x756E6547  # "Genu"

HOST_MODELS = ("host", "max")
VENDORS = ("GenuineIntel", "AuthenticAMD")


class CpuRequest(TupleRecord):
    """What `-cpu` asked for, checked for spelling but not yet against the host."""

    model: str = "host"
    changes: tuple[tuple[Feature, bool], ...] = ()  # in order; the last word on a feature wins
    vendor: str | None = None
    host_phys_bits: bool = False
    phys_bits: int | None = None
    level: int | None = None
    xlevel: int | None = None
    model_id: str | None = None
    enforce: bool = False  # QEMU's `enforce`: a model feature KVM lacks is an error, not a warning
    check: bool = True  # QEMU's `check`: warn about each model feature dropped
    migratable: bool = True  # QEMU's `migratable` (host/max): off gives every bit KVM offers, invtsc too


# The named models' table (vmm.cpu.catalog) loads only when a run names one, or asks for the list:
# building it is a few ms of every start-up that `-cpu host`, the default, has no use for.


def model_names() -> list[str]:
    from vmm.cpu.catalog import MODELS

    return [*HOST_MODELS, *MODELS]


def model_name(name: str) -> str:
    """The model a -cpu name stands for: QEMU's `NAME-v1` is the unversioned NAME on 7.2's machines."""
    if name in HOST_MODELS:
        return name
    from vmm.cpu.catalog import VERSION_1

    return VERSION_1.get(name, name)


def parse_cpu(text: str) -> CpuRequest:
    """QEMU's -cpu MODEL[,+feat][,-feat][,feat=on|off][,vendor=...][,host-phys-bits=on]..."""
    given, *props = text.split(",")
    name = model_name(given)
    if name not in HOST_MODELS and name not in model_names():
        raise ConfigError(f"-cpu {given}: unknown or unsupported CPU model (pyvmm info lists the models)")
    req = CpuRequest(model=name)
    changes: list[tuple[Feature, bool]] = []
    for p in props:
        if not p:
            continue
        if p[0] in "+-":
            changes.append((feature(p[1:]), p[0] == "+"))
            continue
        key, eq, value = p.partition("=")
        if not eq:
            value = "on"  # QEMU's older syntax: a bare name turns it on (`,enforce`, `,x2apic`)
        if key == "vendor":
            if value not in VENDORS:
                raise ConfigError(f"-cpu vendor={value}: pyvmm knows {' and '.join(VENDORS)}")
            req = req._replace(vendor=value)
        elif key == "host-phys-bits":
            req = req._replace(host_phys_bits=_on_off(key, value))
        elif key == "phys-bits":
            req = req._replace(phys_bits=_number(key, value, 32, 52))
        elif key == "level":
            req = req._replace(level=_number(key, value, 1, 0xFF))
        elif key == "xlevel":
            req = req._replace(xlevel=_number(key, value, 0x80000000, 0x800000FF))
        elif key == "model-id":
            req = req._replace(model_id=value)
        elif key == "enforce":
            req = req._replace(enforce=_on_off(key, value))
        elif key == "check":
            req = req._replace(check=_on_off(key, value))
        elif key == "migratable":
            req = req._replace(migratable=_on_off(key, value))
        elif key in ("kvm", "pmu") and value in ("on", "off"):
            raise ConfigError(f"-cpu {key}={value} is not supported")
        else:
            changes.append((feature(key), _on_off(key, value)))
    return req._replace(changes=tuple(changes))


def _on_off(key: str, value: str) -> bool:
    return parse_on_off(value, f"-cpu {key}={value}: the value is on or off")


def _number(key: str, value: str, lo: int, hi: int) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise ConfigError(f"-cpu {key}={value} is not a number") from None
    if not lo <= n <= hi:
        raise ConfigError(f"-cpu {key}={value} is outside {lo:#x}-{hi:#x}")
    return n


# --- shaping a table -----------------------------------------------------------------------------
def feature_offered(supported: Table, f: Feature) -> bool:
    return _bit(supported, f)


def _bit(table: Table, f: Feature) -> bool:
    leaf = table.get(f.word[:2])
    return leaf is not None and bool(leaf.get(f.word[2]) >> f.bit & 1)


def _put(table: Table, f: Feature, on: bool) -> None:
    leaf = table.get(f.word[:2])
    if leaf is None:
        if not on:
            return
        function, index, _ = f.word
        leaf = table[(function, index)] = Leaf(function, index, SIGNIFICANT_INDEX if function in (7, 0xD) else 0)
    reg = f.word[2]
    mask = 1 << f.bit
    leaf.set(reg, leaf.get(reg) | mask if on else leaf.get(reg) & ~mask)


def _vendor_words(vendor: str) -> tuple[int, int, int]:
    ebx, edx, ecx = struct.unpack("<III", vendor.encode())
    return ebx, edx, ecx


def _brand(table: Table, text: str) -> None:
    raw = text.encode()[:47].ljust(48, b"\0")
    for i, function in enumerate((0x80000002, 0x80000003, 0x80000004)):
        words = struct.unpack_from("<IIII", raw, 16 * i)
        table[(function, 0)] = Leaf(function, 0, 0, *words)


class ShapedCpu:
    __slots__ = ("table", "warnings")

    def __init__(self, table: Table, warnings: list[str] | None = None) -> None:
        self.table = table
        self.warnings = warnings if warnings is not None else []


def shape(supported: Table, req: CpuRequest, host_brand: str | None = None) -> ShapedCpu:
    """The table for `req` from KVM's `supported` one. HostLacksFeature for an explicit +feature
    KVM does not offer; a model's own features KVM lacks are dropped with a warning, as QEMU does
    by default (with `enforce`, HostLacksFeature). `host` and `max` get `host_brand` (the host
    CPU's brand string) as their model id, as QEMU gives them the host's."""
    out = ShapedCpu({k: v.copy() for k, v in supported.items()})
    t = out.table
    host_phys = t[(0x80000008, 0)].eax & 0xFF if (0x80000008, 0) in t else None
    model = None
    if req.model not in HOST_MODELS:
        from vmm.cpu.catalog import MODELS

        model = MODELS.get(req.model)
    if model is not None:
        lacking = _apply_model(out, supported, model)
        if lacking and req.enforce:
            f, more = lacking[0], len(lacking) - 1
            also = f" and {more} more of its features" if more else ""
            raise HostLacksFeature(f"-cpu {req.model},enforce: this host's KVM cannot offer {f.name} "
                                   f"({f.describe()}){also}")  # fmt: skip
        if req.check:
            out.warnings += [f"warning: host doesn't support requested feature: {f.describe()}" for f in lacking]
    else:
        _host_features(t, req.migratable)
        if host_brand:
            _brand(t, host_brand)
    for f, on in req.changes:
        if on and not _bit(supported, f):
            raise HostLacksFeature(f"-cpu {req.model}: this host's KVM cannot offer {f.name} ({f.describe()})")
        _put(t, f, on)
    if req.level is not None:
        t[(0, 0)].eax = req.level
    if req.xlevel is not None and (0x80000000, 0) in t:
        t[(0x80000000, 0)].eax = req.xlevel
    if req.vendor is not None:
        ebx, edx, ecx = _vendor_words(req.vendor)
        for function in (0, 0x80000000):
            if (function, 0) in t:
                leaf = t[(function, 0)]
                leaf.ebx, leaf.edx, leaf.ecx = ebx, edx, ecx
    if req.model_id is not None:
        _brand(t, req.model_id)
    if (0x80000001, 0) in t:  # on AMD, 0x80000001 EDX repeats these bits of 1.EDX, as QEMU fills it
        ext = t[(0x80000001, 0)]
        ext.edx &= ~AMD_ALIASES
        if t[(0, 0)].ebx == AMD_VENDOR_EBX:
            ext.edx |= t[(1, 0)].edx & AMD_ALIASES
    phys = host_phys if req.host_phys_bits else req.phys_bits
    if phys is not None and (0x80000008, 0) in t:
        leaf = t[(0x80000008, 0)]
        leaf.eax = (leaf.eax & ~0xFF) | phys
    _put_caches(t, caches.CACHE_MODELS[model.caches if model is not None else "legacy"])
    _trim(t)
    return out


# What `host` and `max` leave out of what KVM offers: topoext always (QEMU never turns it on by
# itself: it needs a cache topology to match), invtsc unless `migratable=off` (a migratable CPU
# cannot promise an invariant TSC)
_NEVER_AUTOMATIC, _UNMIGRATABLE = ("topoext",), ("invtsc",)


def _host_features(t: Table, migratable: bool) -> None:
    """`host`/`max`: what KVM offers. Migratable (QEMU's default): only the features QEMU 7.2 has a
    name for, as QEMU then asks for each known feature and nothing else (bits KVM offers that QEMU
    does not know stay clear), and no invtsc; with `migratable=off` every bit KVM offers."""
    if migratable:
        for word, names in _WORDS.items():
            leaf = t.get(word[:2])
            if leaf is not None:
                known = sum(1 << bit for bit, name in enumerate(names) if name is not None)
                leaf.set(word[2], leaf.get(word[2]) & known)
    for name in _NEVER_AUTOMATIC + (_UNMIGRATABLE if migratable else ()):
        _put(t, FEATURES[name], False)


def _put_caches(t: Table, model: caches.CacheModel) -> None:
    """Leaves 2, 4, 0x80000005, 0x80000006 and 0x8000001D as QEMU fills them for `model` (see
    vmm.cpu.caches), with the topology fields of leaf 4 and 0x8000001D left to `for_vcpu`."""
    for key in [k for k in t if k[0] in (2, 4, 0x8000001D)]:
        del t[key]
    amd = t[(0, 0)].ebx == AMD_VENDOR_EBX
    t[(2, 0)] = Leaf(2, 0, 0, *((0, 0, 0, 0) if amd else caches.leaf2(model.cpuid2)))
    for function, hierarchy in ((4, None if amd else model.cpuid4), (0x8000001D, model.amd)):
        subleaves = [caches.deterministic(c) for c in hierarchy.caches()] if hierarchy is not None else []
        for index, regs in enumerate([*subleaves, (0, 0, 0, 0)]):
            t[(function, index)] = Leaf(function, index, SIGNIFICANT_INDEX, *regs)
    t[(0x80000005, 0)] = Leaf(0x80000005, 0, 0, *caches.amd_80000005(model.amd))
    t[(0x80000006, 0)] = Leaf(0x80000006, 0, 0, *caches.amd_80000006(model.amd))


def _apply_model(out: ShapedCpu, supported: Table, model: Model) -> list[Feature]:
    """`model`'s definition over the table; returns its features KVM cannot offer (dropped)."""
    from vmm.cpu.catalog import KVM_DEFAULTS_OFF

    t = out.table
    lacking: list[Feature] = []
    for function, index, reg in _WORDS:  # the model's feature words start empty, then get its list
        if (function, index) in t:
            t[(function, index)].set(reg, 0)
    for name in model.features:
        f = FEATURES[name]
        if name in KVM_DEFAULTS_OFF:
            continue
        if _bit(supported, f):
            _put(t, f, True)
        else:
            lacking.append(f)
    lacking.sort(key=lambda f: (_WARNING_ORDER.index(f.word), f.bit))  # QEMU warns word by word
    # the model's values for what its definition does not list: nothing of the host's
    for function in (0x80000001, 0x80000007):
        if (function, 0) in t:
            t[(function, 0)].ebx = 0
    t[(0, 0)].eax = model.level
    if (0x80000000, 0) in t:
        t[(0x80000000, 0)].eax = model.xlevel
    leaf1 = t[(1, 0)]
    fam, ext_fam = min(model.family, 0xF), max(model.family - 0xF, 0)
    leaf1.eax = ext_fam << 20 | (model.model >> 4) << 16 | fam << 8 | (model.model & 0xF) << 4 | model.stepping
    if (0x80000001, 0) in t:
        t[(0x80000001, 0)].eax = leaf1.eax
    _brand(t, model.model_id)
    if (0x80000008, 0) in t:
        leaf = t[(0x80000008, 0)]
        leaf.eax = model.virt_bits << 8 | model.phys_bits
    if (7, 0) in t:
        t[(7, 0)].eax = 0
    if not _bit(t, FEATURES["xsave"]):  # no XSAVE: no state components to describe
        for key in [k for k in t if k[0] == 0xD]:
            t[key] = Leaf(0xD, key[1], t[key].flags)
    return lacking


def _trim(t: Table) -> None:
    """Drop leaves above the maximum basic and extended leaf, as the CPU would not answer them."""
    level = t[(0, 0)].eax
    xlevel = t[(0x80000000, 0)].eax if (0x80000000, 0) in t else 0x80000000
    for key in list(t):
        function = key[0]
        if (function < 0x40000000 and function > level) or (function >= 0x80000000 and function > xlevel):
            del t[key]


# --- per vCPU ------------------------------------------------------------------------------------
HTT = 1 << 28


def for_vcpu(table: Table, apic_id: int, ncpus: int) -> list[Leaf]:
    """`table` for the vCPU with `apic_id` on a machine of `ncpus` vCPUs, with QEMU's topology for
    -smp N (one thread per core, N cores on one socket)."""
    t = {k: v.copy() for k, v in table.items()}
    leaf1 = t[(1, 0)]
    logical = ncpus if ncpus > 1 else 0  # QEMU fills the count (and HTT) only for several CPUs
    leaf1.ebx = (leaf1.ebx & 0x0000FFFF) | (logical & 0xFF) << 16 | (apic_id & 0xFF) << 24
    if ncpus > 1:
        leaf1.edx |= HTT
    core_shift = (ncpus - 1).bit_length()
    if (0x80000001, 0) in t:
        ext = t[(0x80000001, 0)]
        ext.ebx = 0  # QEMU: no package type, brand id or the like
        if ncpus > 1 and t[(0, 0)].ebx != INTEL_VENDOR_EBX:
            ext.ecx |= 1 << 1  # CmpLegacy, as QEMU sets it for several CPUs on a non-Intel vendor
    if (0x80000008, 0) in t:  # core count and APIC-id bits for the cores, as QEMU fills them
        t[(0x80000008, 0)].ecx = (core_shift << 12 | (ncpus - 1)) if ncpus > 1 else 0
    for function in (0xB, 0x1F):
        if not any(k[0] == function for k in t):
            continue
        for key in [k for k in t if k[0] == function]:
            del t[key]
        levels = [(0, 1, 1), (core_shift, ncpus, 2)]  # (shift to the next level, CPUs at this level, type)
        for index, (shift, count, kind) in enumerate(levels):
            t[(function, index)] = Leaf(function, index, SIGNIFICANT_INDEX, shift, count, kind << 8 | index, apic_id)
        end = len(levels)
        t[(function, end)] = Leaf(function, end, SIGNIFICANT_INDEX, 0, 0, end, apic_id)
    if (0x8000001E, 0) in t:  # AMD's topology leaf: APIC id, core id (one thread per core), node 0 of 1
        t[(0x8000001E, 0)] = Leaf(0x8000001E, 0, 0, apic_id, apic_id & ((1 << core_shift) - 1), 0, 0)
    for key, leaf in t.items():  # the caches' sharing counts
        if key[0] in (4, 0x8000001D):
            leaf.eax = caches.topology_fields(key[0], leaf.eax, ncpus)
    return sorted(t.values(), key=lambda leaf: (leaf.function, leaf.index))


def table_of(entries: Iterable[Leaf]) -> Table:
    return {(e.function, e.index): e for e in entries}


def feature_names_by_word() -> Sequence[tuple[str, list[str]]]:
    """For `pyvmm info`: each feature word and QEMU's names in it."""
    out = []
    for word, names in _WORDS.items():
        function, index, reg = word
        out.append((f"CPUID.{function:02X}H.{index}:{reg.upper()}", [n for n in names if n]))
    return out
