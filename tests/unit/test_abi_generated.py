"""kvm_abi's generated out-of-line ffi modules: they match the cdefs, a normal start runs no C
parser, and without a usable module the in-line path gives the same declarations.

The fallback cases run in a fresh interpreter on a copy of the package in a temporary directory,
so the real generated modules are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import kvm_abi
from kvm_abi import _cdef, _ffi, _ffi_origin, _spp_cdef, _spp_ffi, ffi
from kvm_abi.spp import spp_ffi

PACKAGE = Path(kvm_abi.__file__).resolve().parent
GENERATOR = PACKAGE / "_ffi_build.py"

# --- the generated modules ---------------------------------------------------


def test_generated_modules_embed_the_cdefs_in_the_source() -> None:
    from kvm_abi import _generated_ffi, _generated_spp_ffi

    assert _generated_ffi.CDEF_SOURCE == _cdef.CDEF, "stale: run `make setup`"
    assert _generated_spp_ffi.CDEF_SOURCE == _spp_cdef.SPP_CDEF, "stale: run `make setup`"
    assert _ffi.FFI_ORIGIN == _ffi_origin.GENERATED
    assert _spp_ffi.SPP_FFI_ORIGIN == _ffi_origin.GENERATED
    assert ffi is _generated_ffi.ffi
    assert spp_ffi is _generated_spp_ffi.ffi


def test_generator_and_loader_agree_on_module_names() -> None:
    source = GENERATOR.read_text()
    assert f'MAINLINE_MODULE: Final = "{_ffi.GENERATED_MODULE}"' in source
    assert f'SPP_MODULE: Final = "{_spp_ffi.GENERATED_MODULE}"' in source


def _layout(an_ffi: Any, record: str) -> list[tuple[str, int, str, int]]:
    ctype = an_ffi.typeof(record)
    return [(name, fld.offset, fld.type.cname, fld.bitsize) for name, fld in ctype.fields]


def test_generated_declarations_equal_the_in_line_parse() -> None:
    # The same cdef parsed by pycparser here: every struct, union, typedef and libc function
    # must come out the same, down to each member's offset and type.
    inline = _ffi.inline_ffi()
    assert inline is not ffi
    assert ffi.list_types() == inline.list_types()
    typedefs, structs, unions = inline.list_types()
    for name in typedefs:
        assert ffi.sizeof(name) == inline.sizeof(name), name
    for record in [f"struct {s}" for s in structs] + [f"union {u}" for u in unions]:
        assert ffi.sizeof(record) == inline.sizeof(record), record
        assert ffi.alignof(record) == inline.alignof(record), record
        assert _layout(ffi, record) == _layout(inline, record), record
    functions = re.findall(r"(\w+)\(", _cdef.LIBC)
    libc_inline = inline.dlopen(None)
    for name in functions:
        assert ffi.typeof(getattr(kvm_abi.libc, name)).cname == inline.typeof(getattr(libc_inline, name)).cname


def test_generated_spp_declarations_equal_the_in_line_parse() -> None:
    inline = _spp_ffi._parse_inline()
    for record in re.findall(r"^struct (\w+) \{", _spp_cdef.SPP_CDEF, re.MULTILINE):
        assert spp_ffi.sizeof(f"struct {record}") == inline.sizeof(f"struct {record}"), record
        assert _layout(spp_ffi, f"struct {record}") == _layout(inline, f"struct {record}"), record
    # It includes the mainline ffi rather than copying it: the typedefs are the same objects.
    assert spp_ffi.typeof("__u64") is ffi.typeof("__u64")


# --- a fresh interpreter -------------------------------------------------------

PROBE = """
import json, sys, warnings
if {isolate}:
    # An editable install's finder would fill in modules missing from the copy from the real
    # package; only the copy may be seen.
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import kvm_abi
    from kvm_abi import _ffi, ioctls, libc
    spp = kvm_abi.spp
    from kvm_abi import _spp_ffi
    report = {{
        "file": kvm_abi.__file__,
        "origin": _ffi.FFI_ORIGIN,
        "spp_origin": _spp_ffi.SPP_FFI_ORIGIN,
        "kvm_run": kvm_abi.ffi.sizeof("struct kvm_run"),
        "get_regs": ioctls.KVM_GET_REGS,
        "subpage_v12": spp.spp_ffi.sizeof("struct spp_v12_kvm_subpage"),
        "pid_ok": libc.getpid() > 0,
        "probe": {probe},
        "warnings": [f"{{w.category.__name__}}: {{w.message}}" for w in caught],
    }}
print(json.dumps(report))
"""


def _run(code: str, cwd: Path, pythonpath: Path | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _probe(cwd: Path, probe: str = "None", pythonpath: Path | None = None) -> dict[str, Any]:
    """Imports kvm_abi in a fresh interpreter; ``probe`` is an expression evaluated after."""
    return _run(PROBE.format(probe=probe, isolate=pythonpath is not None), cwd, pythonpath)


def _assert_same_abi(report: dict[str, Any]) -> None:
    assert report["kvm_run"] == 2352
    assert report["get_regs"] == 0x8090AE81
    assert report["subpage_v12"] == 16
    assert report["pid_ok"]


def test_import_kvm_abi_runs_no_c_parser() -> None:
    code = (
        "import json, sys; import kvm_abi; before = sorted(sys.modules); "
        "from kvm_abi.subpage import SUBPAGE_SIZE; after_spp = sorted(sys.modules); "
        "from kvm_abi.spp import spp_ffi; spp_ffi.sizeof('struct spp_exit_v12'); "
        "print(json.dumps([before, after_spp, sorted(sys.modules)]))"
    )
    before, after_spp, after_spp_ffi = _run(code, PACKAGE.parent)
    for loaded in (before, after_spp, after_spp_ffi):
        assert "pycparser" not in loaded
        assert "cffi" not in loaded  # _cffi_backend alone runs a generated module
    assert "kvm_abi._generated_ffi" in before
    # The SPP profiles and their ffi are loaded only when asked for.
    assert "kvm_abi.spp" not in before
    assert "kvm_abi._spp_ffi" not in after_spp
    assert "kvm_abi._generated_spp_ffi" in after_spp_ffi


def test_a_normal_import_is_silent_and_generated() -> None:
    report = _probe(PACKAGE.parent)
    assert report["origin"] == report["spp_origin"] == "generated"
    assert report["warnings"] == []
    _assert_same_abi(report)


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the kvm_abi package with freshly generated modules; returns its parent."""
    shutil.copytree(PACKAGE, tmp_path / "kvm_abi", ignore=shutil.ignore_patterns("__pycache__", "_generated_*"))
    done = subprocess.run([sys.executable, str(tmp_path / "kvm_abi" / "_ffi_build.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tmp_path


def _edit(path: Path, text: str) -> None:
    # Bytecode written in the same second for a file of the same size would still pass as
    # current, so it goes with the edit.
    path.write_text(text)
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)


def test_copy_uses_its_own_generated_modules(package_copy: Path) -> None:
    report = _probe(package_copy, pythonpath=package_copy)
    assert report["file"].startswith(str(package_copy))
    assert report["origin"] == report["spp_origin"] == "generated"
    assert report["warnings"] == []


def test_missing_module_falls_back_in_line_silently(package_copy: Path) -> None:
    for generated in package_copy.glob("kvm_abi/_generated_*.py"):
        generated.unlink()
    report = _probe(package_copy, pythonpath=package_copy, probe="'pycparser' in sys.modules")
    assert report["file"].startswith(str(package_copy))
    assert report["origin"] == _ffi_origin.MISSING
    assert report["spp_origin"].startswith("in-line")
    assert report["probe"] is True  # the in-line path really parsed
    assert report["warnings"] == []
    _assert_same_abi(report)


def test_stale_module_is_not_used_and_is_reported(package_copy: Path) -> None:
    # A cdef edited after generation: the new declaration must be there, from the in-line path.
    cdef = package_copy / "kvm_abi" / "_cdef.py"
    _edit(cdef, cdef.read_text().replace("int dup(int oldfd);", "int dup(int oldfd);\nint dup2(int a, int b);"))
    probe = "hasattr(libc, 'dup2')"
    report = _probe(package_copy, pythonpath=package_copy, probe=probe)
    assert report["origin"].startswith("in-line") and "another version" in report["origin"]
    assert report["spp_origin"].startswith("in-line")
    assert report["probe"] is True
    assert len(report["warnings"]) == 1
    assert report["warnings"][0].startswith("StaleFfiModuleWarning") and "make setup" in report["warnings"][0]
    _assert_same_abi(report)

    # Regenerating (what `make setup` runs) brings back the generated path, with dup2.
    done = subprocess.run([sys.executable, str(package_copy / "kvm_abi" / "_ffi_build.py")], capture_output=True)
    assert done.returncode == 0
    report = _probe(package_copy, pythonpath=package_copy, probe=probe)
    assert report["origin"] == "generated"
    assert report["probe"] is True
    assert report["warnings"] == []


def test_stale_spp_module_alone_falls_back_for_spp_only(package_copy: Path) -> None:
    spp_cdef = package_copy / "kvm_abi" / "_spp_cdef.py"
    _edit(spp_cdef, spp_cdef.read_text().replace("__u8  insn_len;", "__u8  insn_len;\n    __u8  spare;"))
    probe = "kvm_abi.spp.spp_ffi.offsetof('struct spp_exit_v12', 'spare')"
    report = _probe(package_copy, pythonpath=package_copy, probe=probe)
    assert report["origin"] == "generated"
    assert report["spp_origin"].startswith("in-line")
    assert report["probe"] == 9
    assert [w.split(":")[0] for w in report["warnings"]] == ["StaleFfiModuleWarning"]


def test_module_that_does_not_import_is_reported(package_copy: Path) -> None:
    # As a module written by a cffi whose table format this backend does not accept.
    generated = package_copy / "kvm_abi" / "_generated_ffi.py"
    text = generated.read_text()
    assert "_version = 0x" in text
    _edit(generated, re.sub(r"_version = 0x[0-9A-Fa-f]+", "_version = 0x7FFF", text))
    report = _probe(package_copy, pythonpath=package_copy)
    assert report["origin"].startswith("in-line") and "does not import" in report["origin"]
    assert [w.split(":")[0] for w in report["warnings"]] == ["StaleFfiModuleWarning"]
    _assert_same_abi(report)
