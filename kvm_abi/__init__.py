"""The x86_64 Linux KVM kernel ABI, declared with cffi in ABI mode.

``ffi`` holds every mainline declaration (uapi structs and the libc calls);
``libc`` is the process's C library opened through it.  Submodules carry the
numbers: ``ioctls``, ``exits``, ``caps``, ``constants``.  ``spp`` holds the
unmerged SPP patch profiles, kept apart from everything mainline.

Errors from libc calls are read from ``ffi.errno`` right after the call.
``CData`` is the annotation for cffi objects, ``LibC`` the type of ``libc``.
"""

from kvm_abi import caps, constants, exits, ioctls, spp
from kvm_abi._ffi import CData, LibC, ffi, libc

__all__ = ["CData", "LibC", "caps", "constants", "exits", "ffi", "ioctls", "libc", "spp"]
