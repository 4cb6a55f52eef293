"""pyvmm's ABI declarations against the system's C headers, compiled with gcc.

Every struct declared in ``kvm_abi.ffi`` is walked: its size, and the offset
and size of every member path (anonymous unions and structs included), are
printed by a generated C program and compared with what cffi computed.  Every
ioctl, exit, capability and flag constant is compared the same way.

What the system header does not have yet (it may be older than mainline) is
guarded with #ifdef: a member listed in ``kvm_abi._cdef.NEWER_THAN_6_1``, or a
constant listed in ``NOT_IN_6_1_HEADERS`` below, is checked when the header
has it and skipped when it does not.  Anything else that is missing fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kvm_abi import caps, constants, exits, ffi, ioctls
from kvm_abi._cdef import NEWER_THAN_6_1

MISSING = "MISSING"
U64 = (1 << 64) - 1

# Constants pyvmm names that a 6.1 uapi header lacks: newer mainline
# additions, and one kernel-internal limit that is no uapi macro at all.
NOT_IN_6_1_HEADERS: frozenset[str] = frozenset(
    {
        "KVM_EXIT_LOONGARCH_IOCSR",
        "KVM_EXIT_MEMORY_FAULT",
        "KVM_EXIT_TDX",
        "KVM_SYSTEM_EVENT_TDX_FATAL",
        "KVM_EXIT_HYPERCALL_LONG_MODE",
        "KVM_MEMORY_EXIT_FLAG_PRIVATE",
        "KVM_MEM_GUEST_MEMFD",
        "KVM_SET_USER_MEMORY_REGION2",
        "KVM_MAX_CPUID_ENTRIES",
        *(f"KVM_CAP_{caps.CAP_NAMES[n]}" for n in range(224, 239)),
    }
)

HEADERS = """\
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
"""


# --- what pyvmm says -------------------------------------------------------


def _is_anonymous(ctype: Any) -> bool:
    return "$" in ctype.cname


def _member_paths(ctype: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, type) of every non-bitfield member, descending into members
    whose type is an inline (unnamed) struct or union; named struct types are
    checked on their own."""
    for name, fld in ctype.fields:
        if fld.bitsize != -1:
            continue
        path = (*prefix, name)
        yield path, fld.type
        if fld.type.kind in ("struct", "union") and _is_anonymous(fld.type):
            yield from _member_paths(fld.type, path)


def _declared_records() -> list[str]:
    _typedefs, structs, unions = ffi.list_types()
    return sorted([f"struct {s}" for s in structs] + [f"union {u}" for u in unions])


def _guard_for(key: str) -> str | None:
    for prefix, macro in NEWER_THAN_6_1.items():
        if key == prefix or key.startswith(prefix + "."):
            return macro
    return None


def _struct_expectations(record: str) -> dict[str, tuple[int, str | None]]:
    """key -> (value, guard macro) for one struct or union."""
    out: dict[str, tuple[int, str | None]] = {}
    out[f"sizeof {record}"] = (ffi.sizeof(record), _guard_for(record))
    for path, mtype in _member_paths(ffi.typeof(record)):
        dotted = ".".join(path)
        guard = _guard_for(f"{record}.{dotted}")
        out[f"offsetof {record}.{dotted}"] = (ffi.offsetof(record, *path), guard)
        flexible = mtype.kind == "array" and mtype.length is None
        if not flexible:
            out[f"sizeof {record}.{dotted}"] = (ffi.sizeof(mtype), guard)
    return out


def _module_ints(module: Any, prefixes: tuple[str, ...]) -> dict[str, int]:
    return {
        name: value
        for name, value in vars(module).items()
        if name.isupper() and name.startswith(prefixes) and isinstance(value, int) and not isinstance(value, bool)
    }


LIBC_PREFIXES = ("PROT_", "MAP_", "MADV_", "O_", "MFD_", "EFD_", "FALLOC_FL_")
VECTORS = ("DE", "DB", "BP", "OF", "BR", "UD", "NM", "DF", "TS", "NP", "SS", "GP", "PF", "MF", "AC", "MC", "XM", "VE")


def _constant_groups() -> dict[str, dict[str, int]]:
    return {
        "ioctls": dict(ioctls.ALL_IOCTLS),
        "exits": _module_ints(exits, ("KVM_",)),
        "caps": _module_ints(caps, ("KVM_CAP_",)),
        "constants": _module_ints(constants, ("KVM_", *LIBC_PREFIXES, *(f"{v}_VECTOR" for v in VECTORS))),
    }


# --- what the C compiler says ----------------------------------------------


def _c_offsetof_lines(record: str, key: str, guard: str | None) -> list[str]:
    kind, _, rest = key.partition(" ")
    member = rest[len(record) + 1 :] if rest != record else ""
    if kind == "sizeof" and not member:
        expr = f"sizeof({record})"
    elif kind == "sizeof":
        expr = f"sizeof((({record} *)0)->{member})"
    else:
        expr = f"offsetof({record}, {member})"
    line = f'    printf("%s %llu\\n", "{key}", (unsigned long long)({expr}));'
    if guard is None:
        return [line]
    return [f"#ifdef {guard}", line, "#else", f'    printf("%s {MISSING}\\n", "{key}");', "#endif"]


def _c_constant_lines(name: str) -> list[str]:
    return [
        f"#ifdef {name}",
        f'    printf("%s %llu\\n", "const {name}", (unsigned long long)(uintptr_t)({name}));',
        "#else",
        f'    printf("%s {MISSING}\\n", "const {name}");',
        "#endif",
    ]


def _c_program(structs: dict[str, dict[str, tuple[int, str | None]]], names: list[str]) -> str:
    lines = [HEADERS, "int main(void)", "{"]
    for record, expected in structs.items():
        for key, (_value, guard) in expected.items():
            lines += _c_offsetof_lines(record, key, guard)
    for name in names:
        lines += _c_constant_lines(name)
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


STRUCTS = {record: _struct_expectations(record) for record in _declared_records()}
CONSTANT_GROUPS = _constant_groups()


@pytest.fixture(scope="module")
def c_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the C-side layout cannot be computed")
    names = sorted({name for group in CONSTANT_GROUPS.values() for name in group})
    work = tmp_path_factory.mktemp("abi")
    source = work / "abi.c"
    binary = work / "abi"
    source.write_text(_c_program(STRUCTS, names))
    build = subprocess.run(
        [gcc, "-std=gnu11", "-O0", "-w", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, f"generated program did not compile:\n{build.stderr[-4000:]}"
    run = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    values: dict[str, str] = {}
    for line in run.stdout.splitlines():
        key, _, value = line.rpartition(" ")
        values[key] = value
    return values


def _compare(expected: dict[str, int], allowed_missing: set[str], c_values: dict[str, str]) -> list[str]:
    problems = []
    for key, value in expected.items():
        got = c_values.get(key)
        if got is None:
            problems.append(f"{key}: no output from the C program")
        elif got == MISSING:
            if key not in allowed_missing:
                problems.append(f"{key}: pyvmm has {value}, the system header does not define it")
        elif int(got) != value & U64:
            problems.append(f"{key}: pyvmm {value} (0x{value & U64:x}) != C {got} (0x{int(got):x})")
    return problems


# --- the tests ---------------------------------------------------------------


def test_every_kernel_struct_is_walked() -> None:
    # A guard on list_types(): if it ever stopped returning the records, the
    # parametrised test below would pass vacuously.
    for name in ("struct kvm_run", "struct kvm_regs", "struct kvm_sregs", "struct kvm_cpuid2", "struct kvm_msrs"):
        assert name in STRUCTS
    assert "offsetof struct kvm_run.io.port" in STRUCTS["struct kvm_run"]
    assert "offsetof struct kvm_run.s.regs" in STRUCTS["struct kvm_run"]
    assert "offsetof struct kvm_run.emulation_failure.insn_bytes" in STRUCTS["struct kvm_run"]


@pytest.mark.parametrize("record", sorted(STRUCTS))
def test_struct_layout_matches_gcc(record: str, c_values: dict[str, str]) -> None:
    expected = {key: value for key, (value, _guard) in STRUCTS[record].items()}
    guarded = {key for key, (_value, guard) in STRUCTS[record].items() if guard is not None}
    problems = _compare(expected, guarded, c_values)
    assert not problems, f"{record} differs from <linux/kvm.h>:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("group", sorted(CONSTANT_GROUPS))
def test_constants_match_headers(group: str, c_values: dict[str, str]) -> None:
    expected = {f"const {name}": value for name, value in CONSTANT_GROUPS[group].items()}
    allowed = {f"const {name}" for name in NOT_IN_6_1_HEADERS}
    problems = _compare(expected, allowed, c_values)
    assert not problems, f"kvm_abi.{group} differs from the headers:\n  " + "\n  ".join(problems)


def test_constant_groups_are_not_empty() -> None:
    sizes = {group: len(values) for group, values in CONSTANT_GROUPS.items()}
    assert sizes["ioctls"] >= 60
    assert sizes["exits"] >= 41
    assert sizes["caps"] >= 200
    assert sizes["constants"] >= 80


def test_every_exit_and_cap_in_the_header_is_named() -> None:
    # The reverse direction: a reason or capability the system header knows
    # but pyvmm does not would decode as "unknown" at run time.
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the header's macros cannot be listed")
    macros = subprocess.run(
        [gcc, "-dM", "-E", "-x", "c", "-"],
        input="#include <linux/kvm.h>\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    in_header = set(re.findall(r"^#define (KVM_(?:EXIT|CAP)_\w+)", macros, re.MULTILINE))
    named = set(_module_ints(exits, ("KVM_EXIT_",))) | set(_module_ints(caps, ("KVM_CAP_",)))
    assert in_header, "no KVM_EXIT_/KVM_CAP_ macros found in <linux/kvm.h>"
    assert sorted(in_header - named) == []


def test_kvm_run_total_matches_gcc(c_values: dict[str, str]) -> None:
    assert int(c_values["sizeof struct kvm_run"]) == ffi.sizeof("struct kvm_run")
    assert int(c_values["offsetof struct kvm_run.s"]) == ffi.offsetof("struct kvm_run", "s")
