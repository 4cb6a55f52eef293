"""The debugger's breakpoints: planted `int3` bytes (Z0) and debug-register slots (Z1, and Z0
where planting is unsafe), with the original bytes kept so the debugger never reads an int3.

What this host does with each (README, host notes; tests/kvm/test_debug_host_mechanisms.py):
- An `int3` the monitor writes into CPL-0 code ends in an emulation-failure exit at the int3
  (KVM's emulator, which runs CPL-0 code here, lacks it), with or without
  KVM_GUESTDBG_USE_SW_BP: that exit is the breakpoint. At CPL 3 the same int3 raises #BP in the
  guest, USE_SW_BP or not, and the guest's own handler gets it.
- A DR0-DR3 instruction breakpoint gives KVM_EXIT_DEBUG at CPL 0 and never fires at CPL 3.
So an int3 is planted only where CPL-3 code cannot run: in a page the guest's page tables map for
the supervisor only (or with paging and protection off, where everything is CPL 0). Elsewhere Z0
takes a debug-register slot, which cannot harm the guest at CPL 3.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmm.cpu.modes import CR0_PE, CR0_PG
from vmm.cpu.paging import walk

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

INT3 = 0xCC
SLOTS = 4
PTE_US = 1 << 2


@dataclass
class Planted:
    gpa: int
    original: int


def user_reachable(vcpu: Any, memory: Any, gva: int) -> bool:
    """Whether code at `gva` could run at CPL 3: every level of its mapping has U/S set (or
    protection is on without paging). Unmapped counts as reachable (the safe answer)."""
    sregs = vcpu.get_sregs()
    cr0 = int(sregs.cr0)
    if not cr0 & CR0_PE:
        return False  # real mode: CPL 0 throughout
    if not cr0 & CR0_PG:
        return True
    w = walk(
        gva, cr0, int(sregs.cr3), int(sregs.cr4), int(sregs.efer), lambda a: int.from_bytes(memory.read(a, 8), "little")
    )
    return w.gpa is None or all(s.entry & PTE_US for s in w.steps)


class Breakpoints:
    def __init__(self, memory: Any) -> None:
        self.memory = memory
        self.planted: dict[int, Planted] = {}  # gva -> what was there
        self.slots: list[int | None] = [None] * SLOTS  # debug-register instruction breakpoints

    # --- inserting and removing ----------------------------------------------------------------
    def insert(self, vcpu: Any, gva: int, hardware: bool) -> str:
        if gva in self.planted or gva in self.slots:
            return "OK"
        if not hardware and not user_reachable(vcpu, self.memory, gva):
            gpa = vcpu.translate(gva)
            if gpa is not None and self.memory.contains(gpa, 1):
                self.planted[gva] = Planted(gpa, self.memory.read(gpa, 1)[0])
                self.memory.write(gpa, bytes([INT3]))
                return "OK"
        for i, s in enumerate(self.slots):
            if s is None:
                self.slots[i] = gva
                return "OK"
        return "E28"  # no free debug register

    def remove(self, gva: int) -> str:
        p = self.planted.pop(gva, None)
        if p is not None:
            self.memory.write(p.gpa, bytes([p.original]))
        self.slots = [None if s == gva else s for s in self.slots]
        return "OK"

    def clear(self) -> None:
        for gva in list(self.planted):
            self.remove(gva)
        self.slots = [None] * SLOTS

    def active(self) -> bool:
        return bool(self.planted) or any(s is not None for s in self.slots)

    def hit(self, gva: int) -> bool:
        """Whether a stop at `gva` belongs to a breakpoint still inserted."""
        return gva in self.planted or gva in self.slots

    def planted_at(self, vcpu: Any, rip: int) -> bool:
        p = self.planted.get(rip)
        return p is not None and self.memory.read(p.gpa, 1)[0] == INT3

    # --- stepping over a planted one -------------------------------------------------------------
    def lift(self, gva: int) -> None:
        p = self.planted[gva]
        self.memory.write(p.gpa, bytes([p.original]))

    def replant(self, gva: int) -> None:
        p = self.planted.get(gva)
        if p is not None:
            self.memory.write(p.gpa, bytes([INT3]))

    # --- what the debugger reads and writes --------------------------------------------------------
    def shadow(self, gpa: int, data: bytes) -> bytes:
        """`data` read from RAM at `gpa`, with every planted int3 in it shown as the original byte."""
        if not self.planted:
            return data
        out = bytearray(data)
        for p in self.planted.values():
            if gpa <= p.gpa < gpa + len(out) and out[p.gpa - gpa] == INT3:
                out[p.gpa - gpa] = p.original
        return bytes(out)

    def write_through(self, gpa: int, data: bytes) -> bytes:
        """What to store at `gpa` for a debugger write of `data`: a planted byte keeps its int3 and
        remembers the new original."""
        if not self.planted:
            return data
        out = bytearray(data)
        for p in self.planted.values():
            if gpa <= p.gpa < gpa + len(out):
                p.original = out[p.gpa - gpa]
                out[p.gpa - gpa] = INT3
        return bytes(out)

    def debugreg(self) -> list[int]:
        regs = [0] * 8
        for i, addr in enumerate(self.slots):
            if addr is not None:
                regs[i] = addr
                regs[7] |= 1 << (2 * i)
        return regs
