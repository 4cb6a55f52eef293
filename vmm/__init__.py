"""pyvmm: a userspace virtual machine monitor over /dev/kvm with every exit handled in Python."""

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus, PyvmmError
from vmm.kvm.exits import Exit, IoExit, MmioExit
from vmm.machine import Machine, RunResult
from vmm.verdict import Stop

__all__ = ["CpuMode", "Exit", "ExitStatus", "IoExit", "Machine", "MmioExit", "PyvmmError", "RunResult", "Stop"]
