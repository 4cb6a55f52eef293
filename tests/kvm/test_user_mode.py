"""A guest that drops to CPL 3 runs its workload there, prints from ring 3 and exits from ring 3."""

from __future__ import annotations

import io

import pytest
from conftest import guest

from vmm.cpu.modes import CpuMode
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

MUL, ADD, SEED, STEPS = 6364136223846793005, 1442695040888963407, 1, 10_000_000
MASK = (1 << 64) - 1


def lcg_after(n: int, x0: int) -> int:
    """x[n] of x -> MUL * x + ADD (mod 2**64), by squaring the affine map: O(log n) compositions."""
    # (a, c) stands for x -> a * x + c; composing g after f is (ga * fa, ga * fc + gc)
    result = (1, 0)
    step = (MUL, ADD)
    while n:
        if n & 1:
            result = (step[0] * result[0] & MASK, (step[0] * result[1] + step[1]) & MASK)
        step = (step[0] * step[0] & MASK, (step[0] * step[1] + step[1]) & MASK)
        n >>= 1
    return (result[0] * x0 + result[1]) & MASK


def test_lcg_helper_matches_direct_iteration() -> None:
    # the helper is the oracle below, so check it against the plain recurrence on a short run
    x = SEED
    for _ in range(1000):
        x = (MUL * x + ADD) & MASK
    assert lcg_after(1000, SEED) == x


def test_user_loop_checksum_and_status() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.load_flat(guest("user-loop").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=30)
        sregs = m.vcpu.get_sregs()

    assert bytes(m.console.transcript) == f"user loop done: 0x{lcg_after(STEPS, SEED):016x}\n".encode()
    assert result.status == 33  # debug_exit(0x10)
    # the exit happened at CPL 3: the guest really was running in user mode
    assert sregs.cs.selector & 3 == 3
    assert sregs.cs.dpl == 3
