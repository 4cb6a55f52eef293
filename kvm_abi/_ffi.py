"""The single ffi that holds every mainline declaration, and libc opened through it.

Normally ``ffi`` comes from ``_generated_ffi``, the out-of-line module that ``_ffi_build.py``
writes at build time, so no C parser runs at start-up. Without a usable one (see
``_ffi_origin``), the same cdef is parsed here with cffi's in-line ``ffi.cdef``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, cast

from kvm_abi._cdef import CDEF
from kvm_abi._ffi_origin import load_generated

if TYPE_CHECKING:
    import cffi
    from _cffi_backend import FFI

GENERATED_MODULE: Final = "kvm_abi._generated_ffi"

# cffi objects ("cdata") expose struct members as attributes that only cffi
# knows about; to mypy they are Any, and cffi checks every access at run time.
CData: TypeAlias = Any


class LibC(Protocol):
    """The libc functions declared in ``_cdef.LIBC``, typed for callers.

    Pointer parameters take cdata, bytes (for const char *) or ffi.NULL; each
    function returns -1 (or MAP_FAILED) on error with the cause in ffi.errno.
    """

    def ioctl(self, fd: int, request: int, arg: CData, /) -> int: ...
    def open(self, pathname: bytes, flags: int, mode: int, /) -> int: ...
    def close(self, fd: int, /) -> int: ...
    def read(self, fd: int, buf: CData, count: int, /) -> int: ...
    def write(self, fd: int, buf: CData, count: int, /) -> int: ...
    def pread(self, fd: int, buf: CData, count: int, offset: int, /) -> int: ...
    def pwrite(self, fd: int, buf: CData, count: int, offset: int, /) -> int: ...
    def mmap(self, addr: CData, length: int, prot: int, flags: int, fd: int, offset: int, /) -> CData: ...
    def munmap(self, addr: CData, length: int, /) -> int: ...
    def mprotect(self, addr: CData, length: int, prot: int, /) -> int: ...
    def madvise(self, addr: CData, length: int, advice: int, /) -> int: ...
    def memfd_create(self, name: bytes, flags: int, /) -> int: ...
    def ftruncate(self, fd: int, length: int, /) -> int: ...
    def fallocate(self, fd: int, mode: int, offset: int, length: int, /) -> int: ...
    def eventfd(self, initval: int, flags: int, /) -> int: ...
    def dup(self, oldfd: int, /) -> int: ...
    def getpid(self) -> int: ...
    def gettid(self) -> int: ...


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
ffi: Final[FFI] = _generated if _generated is not None else cast("FFI", inline_ffi())

# dlopen(NULL) resolves against the symbols already loaded into the
# interpreter, which include glibc, so no library path has to be guessed.
libc: Final[LibC] = cast(LibC, ffi.dlopen(None))

del _generated, _origin
