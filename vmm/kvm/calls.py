"""The one place pyvmm calls ioctl: a raw form that returns -errno and a checking form that raises."""

from __future__ import annotations

from kvm_abi import ffi, libc
from vmm.errors import KvmCallFailed

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

NULL = ffi.NULL


def new(ctype: str, init: Any = None) -> Any:
    """A zeroed cffi object owned by Python (typed as Any: its fields are the kernel's)."""
    return ffi.new(ctype, init)


def cast(ctype: str, value: Any) -> Any:
    """ffi.cast, typed as Any like `new`."""
    return ffi.cast(ctype, value)


def as_arg(value: int) -> Any:
    """An integer ioctl argument in the `void *` slot of the fixed-argument declaration."""
    return ffi.cast("void *", value)


def raw_ioctl(fd: int, request: int, arg: Any = NULL) -> int:
    """The ioctl's result, or -errno on failure."""
    rc = libc.ioctl(fd, request, arg)
    return rc if rc >= 0 else -ffi.errno


def ioctl(fd: int, request: int, arg: Any, name: str) -> int:
    """The ioctl's result; a failure raises KvmCallFailed naming the call."""
    rc = libc.ioctl(fd, request, arg)
    if rc < 0:
        raise KvmCallFailed(name, ffi.errno)
    return int(rc)
