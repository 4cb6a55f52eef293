"""pyvmm: a userspace virtual machine monitor over /dev/kvm with every exit handled in Python."""

from .errors import ExitStatus, PyvmmError
from .exits import Exit, IoExit, MmioExit
from .machine import Machine, RunResult
from .modes import CpuMode
from .verdict import Stop

__all__ = ["CpuMode", "Exit", "ExitStatus", "IoExit", "Machine", "MmioExit", "PyvmmError", "RunResult", "Stop"]
