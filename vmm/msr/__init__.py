"""MSR exits: chosen RDMSR/WRMSR accesses handed to Python, the rest left in the kernel."""

from vmm.msr.events import GP, MsrAccess, MsrExits, MsrHandler, msr_name, parse_msr_exit

__all__ = ["GP", "MsrAccess", "MsrExits", "MsrHandler", "msr_name", "parse_msr_exit"]
