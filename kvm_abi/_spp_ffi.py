"""The ffi of the SPP patch layouts, loaded on first use of ``kvm_abi.spp.spp_ffi``.

It includes the mainline ffi for its ``__u*`` typedefs. The generated SPP module imports the
generated mainline module for that, so it is used only while the mainline ffi is that module;
otherwise the SPP cdef is parsed in-line on top of an in-line mainline ffi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, cast

from kvm_abi._ffi import FFI_ORIGIN, inline_ffi
from kvm_abi._ffi_origin import GENERATED, load_generated
from kvm_abi._spp_cdef import SPP_CDEF

if TYPE_CHECKING:
    from _cffi_backend import FFI

GENERATED_MODULE: Final = "kvm_abi._generated_spp_ffi"


def _parse_inline() -> FFI:
    import cffi  # only here: importing it loads pycparser, and cdef() runs it

    inline = cffi.FFI()
    inline.include(inline_ffi())
    inline.cdef(SPP_CDEF)
    return cast("FFI", inline)


if FFI_ORIGIN == GENERATED:
    _generated, _origin = load_generated(GENERATED_MODULE, SPP_CDEF)
else:
    _generated, _origin = None, "in-line: the mainline ffi is in-line"

SPP_FFI_ORIGIN: Final[str] = _origin
"""``"generated"``, or ``"in-line: "`` and the reason the generated module was not used."""

spp_ffi: Final[FFI] = _generated if _generated is not None else _parse_inline()

del _generated, _origin
