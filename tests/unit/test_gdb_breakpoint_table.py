"""The debugger's breakpoint table without KVM: an int3 is planted only where CPL-3 code cannot
run (real mode here; a supervisor-only mapping in the kvm tests), otherwise a debug register is
taken; reads never show a planted int3, writes over one keep it and its new original; removal
and clearing put every byte back; four slots and then E28."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vmm.cpu.modes import CR0_PE
from vmm.gdb.breakpoints import INT3, Breakpoints


class Ram:
    def __init__(self, size: int) -> None:
        self.data = bytearray(range(256)) * (size // 256)

    def contains(self, gpa: int, n: int) -> bool:
        return gpa >= 0 and gpa + n <= len(self.data)

    def read(self, gpa: int, n: int) -> bytes:
        return bytes(self.data[gpa : gpa + n])

    def write(self, gpa: int, data: bytes) -> None:
        self.data[gpa : gpa + len(data)] = data


class Cpu:
    def __init__(self, cr0: int) -> None:
        self.cr0 = cr0

    def get_sregs(self) -> Any:
        return SimpleNamespace(cr0=self.cr0, cr3=0, cr4=0, efer=0)

    def translate(self, gva: int) -> int:
        return gva


def test_real_mode_plants_and_reads_show_the_original() -> None:
    ram, cpu = Ram(0x1000), Cpu(0)
    bp = Breakpoints(ram)
    assert bp.insert(cpu, 0x10, hardware=False) == "OK"
    assert ram.read(0x10, 1) == bytes([INT3]) and bp.planted_at(cpu, 0x10)
    assert bp.shadow(0x0, ram.read(0x0, 0x20)) == bytes(range(0x20))
    # a debugger write over the planted byte: the int3 stays, the new byte is the original now
    stored = bp.write_through(0xF, b"\xaa\xbb\xcc")
    ram.write(0xF, stored)
    assert ram.read(0x10, 1) == bytes([INT3]) and bp.planted[0x10].original == 0xBB
    assert bp.shadow(0xF, ram.read(0xF, 3)) == b"\xaa\xbb\xcc"
    bp.remove(0x10)
    assert ram.read(0x10, 1) == b"\xbb" and not bp.planted


def test_where_cpl3_could_run_a_debug_register_is_taken_and_then_e28() -> None:
    ram, cpu = Ram(0x1000), Cpu(CR0_PE)  # protection without paging: CPL 3 is possible anywhere
    bp = Breakpoints(ram)
    for i in range(4):
        assert bp.insert(cpu, 0x100 + i, hardware=False) == "OK"
    assert not bp.planted and bp.slots == [0x100, 0x101, 0x102, 0x103]
    assert bp.insert(cpu, 0x200, hardware=False) == "E28"
    regs = bp.debugreg()
    assert regs[:4] == [0x100, 0x101, 0x102, 0x103] and regs[7] == 0b01010101
    assert ram.read(0x100, 4) == bytes([0, 1, 2, 3])  # nothing written into the guest


def test_hardware_breakpoints_never_plant_and_clear_restores_everything() -> None:
    ram, cpu = Ram(0x1000), Cpu(0)
    bp = Breakpoints(ram)
    bp.insert(cpu, 0x20, hardware=True)
    bp.insert(cpu, 0x30, hardware=False)
    assert bp.slots[0] == 0x20 and list(bp.planted) == [0x30]
    assert bp.hit(0x20) and bp.hit(0x30) and not bp.hit(0x40)
    bp.lift(0x30)
    assert ram.read(0x30, 1) == b"\x30"
    bp.replant(0x30)
    assert ram.read(0x30, 1) == bytes([INT3])
    bp.clear()
    assert ram.data == Ram(0x1000).data and not bp.active()
