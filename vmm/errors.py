"""Error types, the process exit statuses pyvmm documents, and the one table between them.

Guest-chosen statuses from the isa-debug-exit port are always odd ((v << 1) | 1), so every status
pyvmm itself chooses is even: a test runner can tell a guest's verdict from the monitor's.

An error says what failed; which status that gives is decided here, once (`status_of`), for the
CLI and for a run's result alike. So a KVM call that fails in the middle of SPP work is a KVM
failure (10), not "bad command line", whoever raised it.
"""

from __future__ import annotations

from vmm.light_enum import LightIntEnum


class ExitStatus(LightIntEnum):
    OK = 0  # guest halted with interrupts off, or sent ucall DONE
    USAGE = 2  # bad command line, bad SPP region, bad handler or policy file (click's own status too)
    BAD_IMAGE = 4  # image missing, empty, unreadable, too large, or colliding with what the monitor places
    NO_KVM = 6  # /dev/kvm missing, not permitted, or the wrong API version
    TRIPLE_FAULT = 8  # KVM_EXIT_SHUTDOWN
    INTERNAL_ERROR = 10  # KVM_EXIT_INTERNAL_ERROR, or a KVM call the monitor needed failed
    FAIL_ENTRY = 12  # KVM_EXIT_FAIL_ENTRY: the CPU refused the guest state
    UNHANDLED_EXIT = 14  # an exit no handler takes, an unknown exit reason, an unanswered access under --strict
    TIMEOUT = 16  # --timeout elapsed
    GUEST_ASSERT = 18  # the guest reported a failed assertion through the ucall port
    HANDLER_ERROR = 20  # a user handler or policy raised, or returned something that is not a verdict
    SPP_STOP = 22  # an SPP policy asked to stop the VM
    SPP_UNENFORCEABLE = 24  # a write to a protected page that the monitor cannot judge
    BAD_GUEST_REQUEST = 26  # a guest handed over a pointer or length outside RAM and --strict is on
    SNAPSHOT_UNREADABLE = 40  # a snapshot file that is missing, unreadable or truncated
    SNAPSHOT_CORRUPT = 42  # a snapshot file whose magic, checksum or structure is wrong
    SNAPSHOT_VERSION = 44  # a snapshot file of another format version
    SNAPSHOT_MISMATCH = 46  # a snapshot whose RAM size or vCPU count disagrees with the options given
    SNAPSHOT_HOST = 48  # a snapshot that uses CPU features or state this host's KVM lacks
    SNAPSHOT_HALF_RESTORED = 50  # a restore failed midway and the machine could not be put back
    DEBUG_UNSUPPORTED = 60  # a debug exit nobody asked for, or a step over a breakpoint that made no progress
    GDB_KILLED = 62  # the debugger sent kill
    MONITOR_QUIT = 64  # the monitor's quit command ended the run
    HOST_LACKS_FEATURE = 70  # -cpu asked for a CPU feature this host's KVM cannot offer (or enforce found one)
    SLEEP_NOT_IMPLEMENTED = 72  # ACPI S3 pyvmm cannot resume (no waking vector real mode reaches)
    SPP_STEP_NO_PROGRESS = 80  # the SPP single-step fallback ended in exits but never left the instruction
    SPP_VERDICT_UNAVAILABLE = 82  # an SPP verdict asked for what the backend cannot do for this write
    OBSERVATION_UNWRITTEN = 100  # --stats-json could not be written at the end of the run (a full disk)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
    TERMINATED = 143  # SIGTERM (128 + 15), as a test runner's timeout sends it


class PyvmmError(Exception):
    """Base of every error pyvmm reports as one line. `details` (may be empty) is printed above
    the line: a traceback of user code, a guest-state dump."""

    details: str = ""


class ConfigError(PyvmmError):
    """The request is wrong: an option, a handler registration, a device placement."""


class SppRequestError(ConfigError):
    """A protection request that cannot be honoured as asked (a region outside RAM, a bad mask)."""


class ImageError(PyvmmError):
    """A guest image or module that cannot be loaded."""


class KvmUnavailable(PyvmmError):
    """/dev/kvm cannot be used at all."""


class KvmCallFailed(PyvmmError):
    """An ioctl failed; carries the call's name and errno so the message reads by name."""

    def __init__(self, call: str, errno: int) -> None:
        import os

        self.call = call
        self.errno = errno
        super().__init__(f"{call} failed: {os.strerror(errno)} (errno {errno})")


class KvmSetupError(PyvmmError):
    """A host resource the VM needs (a mapping, a memfd) could not be made."""


class RunError(PyvmmError):
    """The run loop cannot go on safely (vCPUs that will not pause, a step that made no progress)."""


class GuestMemoryError(PyvmmError):
    """A guest-physical access outside RAM. Raised for hostile guest pointers and bad user input."""


class SppEnforcementError(PyvmmError):
    """A write to a protected page that neither KVM nor the monitor can judge exactly."""


class UserCodeError(PyvmmError):
    """User code (a handler or policy file, a handler, a policy) raised or misbehaved; `details`
    holds its traceback, trimmed to the user's frames."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class SnapshotUnreadable(PyvmmError):
    """A snapshot file that cannot be read whole."""


class SnapshotCorrupt(PyvmmError):
    """A snapshot file whose bytes are not what was written (magic, checksum, structure)."""


class SnapshotVersion(PyvmmError):
    """A snapshot file of a format version this pyvmm does not read."""


class SnapshotMismatch(ConfigError):
    """A snapshot that disagrees with the machine options it is restored under."""


class SnapshotHost(PyvmmError):
    """A snapshot that needs CPU features or vCPU state this host's KVM does not offer."""


class SnapshotHalfRestored(PyvmmError):
    """A restore or fast reset that failed midway and left the machine neither as it was nor as
    the snapshot holds it: the machine refuses to run until a restore succeeds."""


class HostLacksFeature(PyvmmError):
    """-cpu asked for something this host's KVM cannot offer: the request is well-formed, the host
    is the limit (a runner can tell it from a typo, status 2, and skip the test)."""


class ObservationUnwritten(PyvmmError):
    """What a run was asked to write at its end (`--stats-json`) did not reach its file."""


class Interrupted(PyvmmError):
    """Ctrl-C (or SIGTERM) before or while the guest ran."""


# The one table from what failed to the process status. A class not listed takes its nearest
# listed base's status.
STATUS_OF: dict[type[PyvmmError], ExitStatus] = {
    PyvmmError: ExitStatus.INTERNAL_ERROR,
    ConfigError: ExitStatus.USAGE,
    SppRequestError: ExitStatus.USAGE,
    ImageError: ExitStatus.BAD_IMAGE,
    KvmUnavailable: ExitStatus.NO_KVM,
    KvmCallFailed: ExitStatus.INTERNAL_ERROR,
    KvmSetupError: ExitStatus.INTERNAL_ERROR,
    RunError: ExitStatus.INTERNAL_ERROR,
    GuestMemoryError: ExitStatus.BAD_GUEST_REQUEST,
    SppEnforcementError: ExitStatus.SPP_UNENFORCEABLE,
    UserCodeError: ExitStatus.HANDLER_ERROR,
    SnapshotUnreadable: ExitStatus.SNAPSHOT_UNREADABLE,
    SnapshotCorrupt: ExitStatus.SNAPSHOT_CORRUPT,
    SnapshotVersion: ExitStatus.SNAPSHOT_VERSION,
    SnapshotMismatch: ExitStatus.SNAPSHOT_MISMATCH,
    SnapshotHost: ExitStatus.SNAPSHOT_HOST,
    SnapshotHalfRestored: ExitStatus.SNAPSHOT_HALF_RESTORED,
    HostLacksFeature: ExitStatus.HOST_LACKS_FEATURE,
    ObservationUnwritten: ExitStatus.OBSERVATION_UNWRITTEN,
    Interrupted: ExitStatus.INTERRUPTED,
}


def status_of(error: PyvmmError) -> ExitStatus:
    for cls in type(error).__mro__:
        status = STATUS_OF.get(cls)
        if status is not None:
            return status
    return ExitStatus.INTERNAL_ERROR
