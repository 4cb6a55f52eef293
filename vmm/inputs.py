"""Files pyvmm reads or writes on the user's behalf, checked before they are touched.

A path is looked at with stat() first: only a regular file is read (a FIFO would block for ever,
/dev/zero or /dev/urandom never end, a directory has no bytes), and a file larger than the reader
can use is refused from its size, before a byte of it is read. The errors name the kind of file.
"""

from __future__ import annotations

import os
import stat

MiB = 1 << 20
TEXT_FILE_LIMIT = 16 * MiB  # an --spp-file, a handler or policy file: text a person wrote

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISLNK, "a symbolic link"),
)


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "of an unknown kind"


class InputFileError(Exception):
    """Why a file was refused, as a phrase that follows its quoted name ('is a FIFO')."""


def check_regular(path: str, limit: int) -> int:
    """The size of the regular file at `path`, or InputFileError; no byte is read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputFileError("does not exist") from None
    except OSError as e:
        raise InputFileError(f"cannot be examined: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(f"is {kind_of(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise InputFileError(f"is {st.st_size} bytes, more than the {limit} that can be used")
    return st.st_size


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (InputFileError otherwise). The read
    itself is bounded too, in case the file grew after stat()."""
    check_regular(path, limit)
    try:
        # O_NONBLOCK: a path swapped for a FIFO after stat() cannot block the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:
        raise InputFileError("is not readable (permission denied)") from None
    except OSError as e:
        raise InputFileError(f"cannot be opened: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputFileError("is not a regular file")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise InputFileError(f"is more than the {limit} bytes that can be used")
        return b"".join(chunks)
    except OSError as e:
        raise InputFileError(f"cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)


def check_output(path: str) -> None:
    """InputFileError if `path` exists and is neither a regular file nor a character device; for
    a refusal before a run rather than after it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InputFileError(f"cannot be examined: {e.strerror}") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise InputFileError(f"is {kind_of(st.st_mode)}, not a file pyvmm can write")


def open_output(path: str) -> int:
    """A descriptor of a file to write (a trace, a snapshot, COM1's output): a regular file or a
    character device (/dev/null, a tty); an existing FIFO, directory or socket is refused by name
    rather than blocked on."""
    check_output(path)
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise InputFileError(f"cannot be written: {e.strerror}") from None


def clear_socket_path(path: str) -> None:
    """Make room for a Unix socket to be bound at `path`: a socket left there by an earlier run is
    removed; anything else is refused (InputFileError) and left as it was. Unlinking whatever a
    path names would let `-gdb unix:/dev/null`, run as root, delete the device node."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InputFileError(f"cannot be examined: {e.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise InputFileError(f"is {kind_of(st.st_mode)}, not a socket pyvmm may replace")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise InputFileError(f"cannot be removed: {e.strerror}") from None
