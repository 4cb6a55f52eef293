"""The single ffi that holds every mainline declaration, and libc opened through it.

Normally ``ffi`` comes from ``_generated_ffi``, the out-of-line module that ``_ffi_build.py``
writes at build time, so no C parser runs at start-up. Without a usable one (see
``_ffi_origin``), the same cdef is parsed here with cffi's in-line ``ffi.cdef``.
"""

from __future__ import annotations

from kvm_abi._cdef import CDEF
from kvm_abi._ffi_origin import load_generated

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any, Final

    import cffi
    from _cffi_backend import FFI

    from kvm_abi._types import LibC

GENERATED_MODULE: Final = "kvm_abi._generated_ffi"

_inline: cffi.FFI | None = None


def inline_ffi() -> cffi.FFI:
    """The mainline declarations as an in-line ``cffi.FFI`` (parsed on first call, if ``ffi``
    is not one already): what an in-line ffi must ``include()`` to share these types."""
    global _inline
    if _inline is None:
        import cffi  # only here: importing it loads pycparser, and cdef() runs it

        _inline = cffi.FFI()
        _inline.cdef(CDEF)
    return _inline


_generated, _origin = load_generated(GENERATED_MODULE, CDEF)

FFI_ORIGIN: Final[str] = _origin
"""``"generated"``, or ``"in-line: "`` and the reason the generated module was not used."""

# Both kinds of ffi object offer the same interface; the generated one is _cffi_backend's own
# class, which cffi.FFI wraps, so that is the type callers see.
_chosen: Any = _generated if _generated is not None else inline_ffi()
ffi: Final[FFI] = _chosen

# dlopen(NULL) resolves against the symbols already loaded into the
# interpreter, which include glibc, so no library path has to be guessed.
# (cffi types the library as an opaque Lib; LibC declares its functions.)
_libc: Any = ffi.dlopen(None)
libc: Final[LibC] = _libc

del _generated, _origin, _chosen, _libc
