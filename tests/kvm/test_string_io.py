"""String I/O (rep ins/outs): one exit can carry several elements, and the dispatcher hands the
port handler each element in turn, stopping early when a handler returns a Stop.

KVM batches `rep insb` into one exit; `rep outsb` may arrive one element per exit, so the
element-by-element checks use the input direction."""

from __future__ import annotations

import io

import pytest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.kvm.exits import IoExit
from vmm.machine import Machine
from vmm.verdict import Stop

pytestmark = pytest.mark.kvm

PORT = 0x500  # no built-in device there
N = 5
LOAD = 0x7C00
BUF = LOAD + 29  # right after the code below

# real mode at 0x7c00: rep insb N bytes from PORT into BUF, then rep outsb them to 0xe9, halt
PROGRAM = bytes.fromhex(
    "fa fc"  # cli; cld
    "31 c0 8e c0"  # xor ax, ax; mov es, ax
    f"bf {BUF & 0xFF:02x} {BUF >> 8:02x}"  # mov di, BUF
    f"b9 {N:02x} 00"  # mov cx, N
    f"ba {PORT & 0xFF:02x} {PORT >> 8:02x}"  # mov dx, PORT
    "f3 6c"  # rep insb
    f"be {BUF & 0xFF:02x} {BUF >> 8:02x}"  # mov si, BUF
    f"b9 {N:02x} 00"  # mov cx, N
    "ba e9 00"  # mov dx, 0xe9
    "f3 6e"  # rep outsb
    "f4"  # hlt
) + bytes(N)
assert len(PROGRAM) == BUF - LOAD + N


def test_each_element_of_a_string_input_reaches_the_handler() -> None:
    seen: list[tuple[int, int]] = []

    def letters(ex: IoExit) -> None:
        seen.append((ex.count, ex.index))
        ex.value = ord("a") + ex.index

    with Machine(console=io.BytesIO()) as m:
        m.on_io(PORT, 1, letters)
        m.load_flat(PROGRAM, CpuMode.REAL)
        result = m.run(timeout=5)
        buffer = m.memory.read(BUF, N)

    assert result.status == ExitStatus.OK
    assert seen == [(N, i) for i in range(N)]  # one exit, N elements
    assert buffer == b"abcde"
    # the built-in debug console took each element of the rep outsb
    assert bytes(m.console.transcript) == b"abcde"


def test_a_stop_ends_the_string_early() -> None:
    indices: list[int] = []

    def stop_at_two(ex: IoExit) -> Stop | None:
        indices.append(ex.index)
        return Stop(ExitStatus.OK, "enough") if ex.index == 2 else None

    with Machine(console=io.BytesIO()) as m:
        m.on_io(PORT, 1, stop_at_two)
        m.load_flat(PROGRAM, CpuMode.REAL)
        result = m.run(timeout=5)

    assert result.reason == "enough"
    assert indices == [0, 1, 2]  # elements 3 and 4 were never handed over
    assert bytes(m.console.transcript) == b""  # the guest never got past the rep insb
