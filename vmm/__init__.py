"""pyvmm: a userspace virtual machine monitor over /dev/kvm with every exit handled in Python.

The names below are loaded when first asked for (`from vmm import Machine`), not when the package
is: every `vmm.*` module, the command line's entry point among them, imports this file first, and
the command must be able to take Ctrl-C over before any of the monitor is imported.
"""

# typing.TYPE_CHECKING without importing typing (a tenth of the start-up's imports); mypy reads the name
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vmm.cpu.modes import CpuMode
    from vmm.errors import ExitStatus, PyvmmError
    from vmm.kvm.exits import Exit, IoExit, MmioExit
    from vmm.machine import Machine, RunResult
    from vmm.verdict import Stop

_WHERE = {
    "CpuMode": "vmm.cpu.modes",
    "ExitStatus": "vmm.errors",
    "PyvmmError": "vmm.errors",
    "Exit": "vmm.kvm.exits",
    "IoExit": "vmm.kvm.exits",
    "MmioExit": "vmm.kvm.exits",
    "Machine": "vmm.machine",
    "RunResult": "vmm.machine",
    "Stop": "vmm.verdict",
}


def __getattr__(name: str) -> "Any":
    module = _WHERE.get(name)
    if module is None:
        # also how `from vmm import layout` falls through to importing the submodule
        raise AttributeError(f"module 'vmm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["CpuMode", "Exit", "ExitStatus", "IoExit", "Machine", "MmioExit", "PyvmmError", "RunResult", "Stop"]
