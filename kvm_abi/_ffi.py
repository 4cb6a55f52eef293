"""The single cffi instance that holds every mainline declaration."""

from typing import Final

import _cffi_backend
import cffi

from kvm_abi._cdef import CDEF

ffi: Final[cffi.FFI] = cffi.FFI()
ffi.cdef(CDEF)

# dlopen(NULL) resolves against the symbols already loaded into the
# interpreter, which include glibc, so no library path has to be guessed.
libc: Final[_cffi_backend.Lib] = ffi.dlopen(None)
