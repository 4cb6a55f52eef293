"""The x86_64 Linux KVM kernel ABI, declared with cffi in ABI mode.

``ffi`` holds every mainline declaration (uapi structs and the libc calls);
``libc`` is the process's C library opened through it.  Submodules carry the
numbers: ``ioctls``, ``exits``, ``caps``, ``constants``.  ``spp`` holds the
unmerged SPP patch profiles, kept apart from everything mainline, and
``subpage`` the sub-page geometry they share with pyvmm's software engine.

``ffi`` is loaded from a module generated at build time (``_ffi_build.py``),
so no C parser runs at start-up; ``_ffi.FFI_ORIGIN`` says whether it was.
``spp`` is imported on first use: nothing mainline needs it.

Errors from libc calls are read from ``ffi.errno`` right after the call.
``CData`` is the annotation for cffi objects, ``LibC`` the type of ``libc``; like ``spp``,
they are loaded on first use (they import typing, which start-up does without).
"""

from kvm_abi import caps, constants, exits, ioctls, subpage
from kvm_abi._ffi import ffi, libc

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from kvm_abi import spp
    from kvm_abi._types import CData, LibC
else:

    def __getattr__(name: str) -> object:
        if name == "spp":
            import kvm_abi.spp

            return kvm_abi.spp
        if name in ("CData", "LibC"):  # for annotations only; defining them imports typing
            from kvm_abi import _types

            return getattr(_types, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CData", "LibC", "caps", "constants", "exits", "ffi", "ioctls", "libc", "spp", "subpage"]
