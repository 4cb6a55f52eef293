"""A guest protecting its own memory through the ucall port (SPP_PROTECT, SPP_RELEASE, SPP_QUERY),
as an in-guest introspection agent would.

The spp-demo guest shows the intended use end to end. Bad requests come from a guest assembled
here: a few instructions that hand the host prepared ucall structs, so each argument can be wrong
in exactly one way (the C library cannot even express a mask wider than 32 bits).
"""

from __future__ import annotations

import errno
import io
import re
import struct

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.devices import ucall as uc
from vmm.errors import ExitStatus
from vmm.machine import Machine
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
MEM = 16 << 20
DEMO_LINES = [
    "kernel: SPP_PROTECT page 0x{page:x}, mask 0xfffffffe -> 0",
    "kernel: syscall table at 0x{page:x}, protected (sub-page 0 of its page)",
    "kernel: syscall 1 -> sys_hello",
    "attacker: overwriting syscall 1 with a hook",
    "kernel: syscall 1 -> sys_hello (table intact)",
    "kernel: updating counters on the same page",
    "kernel: counters = 1000 (writes to the rest of the page still work)",
]


def test_spp_demo_keeps_its_syscall_table() -> None:
    events: list[SppEvent] = []
    log = io.StringIO()
    with Machine(MEM, console=io.BytesIO(), log=log) as m:
        m.load_flat(guest("spp-demo").read_bytes(), CpuMode.LONG)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        result = m.run(timeout=20)
        out = bytes(m.console.transcript).decode()
        found = re.match(r"kernel: SPP_PROTECT page 0x([0-9a-f]+),", out)
        assert found, out
        page = int(found.group(1), 16)
        table = m.memory.read(page, 64)
        counters = struct.unpack("<8Q", m.memory.read(page + 2048, 64))
        masks = spp.masks()

    assert result.status == ExitStatus.OK, result.reason
    assert out.splitlines() == [line.format(page=page) for line in DEMO_LINES]
    assert masks == {page: 0xFFFFFFFE}
    assert sum(counters) == 1000 and all(c == 125 for c in counters)  # 1000 increments round-robin
    assert log.getvalue() == ""

    # exactly one violation: the attacker's 8-byte store over syscall 1, which did not land
    assert len(events) == 1
    ev = events[0]
    assert (ev.gpa, ev.write_gpa, ev.size, ev.backend) == (page + 8, page + 8, 8, "software")
    assert ev.page_mask == 0xFFFFFFFE
    hook = ev.data
    assert hook is not None and table[8:16] != hook
    assert table[8:16] not in (table[0:8], table[16:24])  # still sys_hello, not sys_nop or sys_time


def test_spp_demo_without_spp_shows_the_attack_succeeding() -> None:
    """The contrast the demo is for: with no SPP the host answers ENOSYS and the hook lands."""
    with Machine(MEM, console=io.BytesIO(), log=io.StringIO()) as m:
        m.load_flat(guest("spp-demo").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=20)
        out = bytes(m.console.transcript).decode().splitlines()
    assert result.status == ExitStatus.OK, result.reason
    assert out[0].endswith(f"-> -{errno.ENOSYS}")
    assert out[1].endswith("NOT protected (the host refused)")
    assert out[4] == "kernel: syscall 1 -> evil_hook (TABLE HIJACKED)"


# --- a guest that only makes the host's chosen ucalls -----------------------------------------
CODE = 0x100000
STRUCTS = 0x110000  # one 64-byte struct ucall per request, written by the host before the run
TARGET = 0x300000
NO_RESULT = 0x7FFFFFFF  # preset, so an untouched result is visible


def ucall_guest(count: int) -> bytes:
    """`mov eax, struct; mov edx, UCALL_PORT; out dx, eax` per struct, then `hlt` (IF is clear,
    so the run ends with status 0)."""
    code = b""
    for i in range(count):
        code += b"\xb8" + struct.pack("<I", STRUCTS + 64 * i)
        code += b"\xba" + struct.pack("<I", 0x1000)
        code += b"\xef"
    return code + b"\xf4"


REQUESTS = [
    # (cmd, args, expected result, expected args[2] afterwards or None, why)
    (uc.SPP_PROTECT, [MEM + 64 * PAGE, 1, 0, 0], -errno.EINVAL, None, "page outside RAM"),
    (uc.SPP_PROTECT, [MEM - PAGE, 2, 0, 0], -errno.EINVAL, None, "second page outside RAM"),
    (uc.SPP_PROTECT, [TARGET + 0x10, 1, 0, 0], -errno.EINVAL, None, "unaligned page"),
    (uc.SPP_PROTECT, [TARGET, 1, 1 << 32, 0], -errno.EINVAL, None, "mask wider than 32 bits"),
    (uc.SPP_PROTECT, [TARGET, 0, 0, 0], -errno.EINVAL, None, "zero pages"),
    (uc.SPP_RELEASE, [MEM, 1, 0, 0], -errno.EINVAL, None, "release outside RAM"),
    (uc.SPP_PROTECT, [TARGET, 2, 0x0000FFFF, 0], 0, None, "good: two pages"),
    (uc.SPP_QUERY, [TARGET + PAGE, 0, 0, 0], 0, 0x0000FFFF, "query a protected page"),
    (uc.SPP_RELEASE, [TARGET, 1, 0, 0], 0, None, "good release of the first"),
    (uc.SPP_QUERY, [TARGET, 0, 0, 0], 0, 0xFFFFFFFF, "query a released page"),
]


def test_bad_guest_requests_get_einval_and_change_nothing() -> None:
    log = io.StringIO()
    events: list[SppEvent] = []
    with Machine(MEM, console=io.BytesIO(), log=log) as m:
        m.load_flat(ucall_guest(len(REQUESTS)), CpuMode.LONG)
        for i, (cmd, args, *_) in enumerate(REQUESTS):
            m.memory.write(STRUCTS + 64 * i, uc.LAYOUT.pack(uc.MAGIC, cmd, *args, 0, 0, 0, NO_RESULT))
        spp = m.enable_spp()
        spp.add_policy(events.append)
        result = m.run(timeout=20)
        answers = [uc.LAYOUT.unpack(m.memory.read(STRUCTS + 64 * i, 64)) for i in range(len(REQUESTS))]
        masks = spp.masks()

    assert result.status == ExitStatus.OK, result.reason
    for (_, _, want, want_arg2, why), answer in zip(REQUESTS, answers, strict=True):
        _magic, _cmd, _a0, _a1, arg2, _a3, _file, _msg, _line, got = answer
        assert got == want, why
        if want_arg2 is not None:
            assert arg2 == want_arg2, why
    assert masks == {TARGET + PAGE: 0x0000FFFF}  # only the good requests took effect
    refusals = [line for line in log.getvalue().splitlines() if "refused" in line]
    assert len(refusals) == 6
    assert all(re.match(r"pyvmm: guest SPP_(PROTECT|RELEASE) refused: ", line) for line in refusals)
    assert f"{MEM + 64 * PAGE:#x} is not in guest RAM" in refusals[0]
    assert events == []
