"""Log every guest write to the MSRs a rootkit rewrites to take over system calls.

    pyvmm run KERNEL --handlers examples/syscall_msr_watch.py

LSTAR and CSTAR hold the SYSCALL entry points (64-bit and compatibility mode), SYSENTER_EIP the
SYSENTER one, and EFER the SCE bit that turns SYSCALL on. Each write is logged on stderr with the
vCPU, the old and new value and the writing instruction's address, then allowed to stand; reads
stay in the kernel. To refuse a write instead, return `GP` (from vmm.msr) from `log_write`.
"""

from __future__ import annotations

import sys
from typing import Any

WATCHED = {0xC0000082: "LSTAR", 0xC0000083: "CSTAR", 0x176: "SYSENTER_EIP", 0xC0000080: "EFER"}


def log_write(access: Any) -> None:
    old = access.vcpu.get_msrs([access.index]).get(access.index)
    was = f"{old:#x}" if old is not None else "?"
    rip = f"{access.rip:#x}" if access.rip is not None else "?"
    sys.stderr.write(
        f"msr-watch: vCPU {access.vcpu.index} wrote {WATCHED[access.index]} {was} -> {access.value:#x} at rip {rip}\n"
    )
    return None  # let the write stand


def setup(machine: Any) -> None:
    for index in WATCHED:
        machine.on_msr(index, log_write, reads=False)
