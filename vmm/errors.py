"""Error types and the process exit statuses pyvmm documents.

Guest-chosen statuses from the isa-debug-exit port are always odd ((v << 1) | 1), so every status
pyvmm itself chooses is even: a test runner can tell a guest's verdict from the monitor's.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0  # guest halted with interrupts off, or sent ucall DONE
    USAGE = 2  # bad command line (click's own status for usage errors)
    BAD_IMAGE = 4  # image missing, empty, unreadable, too large, or over the monitor's area
    NO_KVM = 6  # /dev/kvm missing, not permitted, or the wrong API version
    TRIPLE_FAULT = 8  # KVM_EXIT_SHUTDOWN
    INTERNAL_ERROR = 10  # KVM_EXIT_INTERNAL_ERROR (emulation failure and friends)
    FAIL_ENTRY = 12  # KVM_EXIT_FAIL_ENTRY: the CPU refused the guest state
    UNHANDLED_EXIT = 14  # an exit no handler takes, or an exit reason pyvmm does not know
    TIMEOUT = 16  # --timeout elapsed
    GUEST_ASSERT = 18  # the guest reported a failed assertion through the ucall port
    HANDLER_ERROR = 20  # a user handler or policy raised
    SPP_STOP = 22  # an SPP policy asked to stop the VM
    SPP_UNENFORCEABLE = 24  # a write to a protected page that neither KVM nor single-step can judge
    BAD_GUEST_REQUEST = 26  # a guest handed over a pointer or length outside RAM and --strict is on
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class PyvmmError(Exception):
    """Base of every error pyvmm reports as one line; `status` is the process exit status."""

    status: ExitStatus = ExitStatus.USAGE

    def __init__(self, message: str, status: ExitStatus | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class KvmUnavailable(PyvmmError):
    status = ExitStatus.NO_KVM


class KvmCallFailed(PyvmmError):
    """An ioctl failed; carries the call's name and errno so the message reads by name."""

    status = ExitStatus.INTERNAL_ERROR

    def __init__(self, call: str, errno: int) -> None:
        import os

        self.call = call
        self.errno = errno
        super().__init__(f"{call} failed: {os.strerror(errno)} (errno {errno})")


class ImageError(PyvmmError):
    status = ExitStatus.BAD_IMAGE


class GuestMemoryError(PyvmmError):
    """A guest-physical access outside RAM. Raised for hostile guest pointers and bad user input."""

    status = ExitStatus.BAD_GUEST_REQUEST


class ConfigError(PyvmmError):
    status = ExitStatus.USAGE
