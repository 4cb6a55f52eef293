"""`pyvmm-system-x86_64`: QEMU's argument vector, unchanged, for a test runner that points its QEMU
variable here. The options are `pyvmm run`'s (which spells every QEMU option as QEMU does); this
module adds only what runners probe for before a run: the version, the help, and the device list.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence

QEMU_VERSION = "7.2.0"  # the QEMU release whose options, defaults and machine pyvmm follows
PYVMM_VERSION = "0.1.0"  # pyproject.toml's version (read here without importlib's start-up cost)
PROG = "pyvmm-system-x86_64"

_VERSION = "--version", "-version"
_HELP = "-h", "--help", "-help"
_DEVICE = "-device", "--device"
_LISTING = "help", "?"


def version_text() -> str:
    return (
        f"QEMU emulator version {QEMU_VERSION} (pyvmm {PYVMM_VERSION})\n"
        "pyvmm runs guests on /dev/kvm with QEMU's command line; the options are QEMU's, "
        "the implementation is pyvmm's\n"
    )


def probe(argv: Sequence[str]) -> str | None:
    """What a probe asks to print (the version, the device list), or None for a run. As in QEMU,
    a probe anywhere on the line wins over the rest of it."""
    for i, arg in enumerate(argv):
        if arg in _VERSION:
            return version_text()
        if arg in _DEVICE and i + 1 < len(argv) and argv[i + 1] in _LISTING:
            from vmm.cli.devices import device_help  # (a dataclass: only for the listing)

            return device_help()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from vmm.cli.entry import run_command_line

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in _HELP for a in args):
        sys.stdout.write(version_text() + f"usage: {PROG} [options]: the options of `pyvmm run`\n\n")
        return run_command_line(["run", "--help"])
    text = probe(args)
    if text is not None:
        sys.stdout.write(text)
        return 0
    # QEMU prints nothing of its own when a run ends normally; neither does this command (-q)
    return run_command_line(["run", "-q", *args], qemu_command=True)


if __name__ == "__main__":
    sys.exit(main())
