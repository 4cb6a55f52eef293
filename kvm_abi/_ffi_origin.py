"""Where an ffi comes from: a generated out-of-line module, or the cdef parsed in-line.

The generated module is used only when the cdef text it embeds equals the cdef in the source,
compared in full. A hash would do the same job less exactly and cost more: hashlib loads OpenSSL
(about 3 ms) and even binascii.crc32 loads an extension module, where comparing 15 KB of text
takes microseconds.

When it cannot be used, the in-line ``ffi.cdef`` path gives the same declarations, only slower.
A missing module is the normal state of an unbuilt source tree (run through PYTHONPATH), so it
is silent. A module that is present but stale or broken means a build product disagrees with
the source (typically a cdef edited in an editable install without regenerating): that gets a
warning naming the fix, because otherwise the only symptom would be a start-up tens of
milliseconds slower than it should be.
"""

from __future__ import annotations

import warnings

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Final

    from _cffi_backend import FFI

GENERATED: Final = "generated"
MISSING: Final = "in-line: no generated module"
REGENERATE: Final = "regenerate it with `make setup` or `python kvm_abi/_ffi_build.py`"


class StaleFfiModuleWarning(RuntimeWarning):
    """A generated ffi module is present but unusable, so the cdef is parsed at start-up."""


def load_generated(module_name: str, cdef: str) -> tuple[FFI | None, str]:
    """(ffi, GENERATED) from module_name if it was generated from exactly ``cdef``; otherwise
    (None, why), having warned unless the module simply does not exist."""
    try:
        # __import__ rather than importlib.import_module: the same module, but through the
        # interpreter's own import path, which is the one ``-X importtime`` reports.
        module = __import__(module_name, fromlist=["ffi"])
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None, MISSING
        problem = f"{module_name} does not import ({exc})"
    except Exception as exc:  # e.g. the backend refuses tables written for another cffi
        problem = f"{module_name} does not import ({type(exc).__name__}: {exc})"
    else:
        if getattr(module, "CDEF_SOURCE", None) == cdef:
            generated: FFI = module.ffi
            return generated, GENERATED
        problem = f"{module_name} was generated from another version of its cdef"
    warnings.warn(
        f"{problem}: parsing the cdef instead, which slows start-up; {REGENERATE}",
        StaleFfiModuleWarning,
        stacklevel=3,
    )
    return None, f"in-line: {problem}"
