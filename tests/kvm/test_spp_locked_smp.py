"""Locked read-modify-writes on a trapped page are atomic across vCPUs: `mb-atomics` at -smp 4,
each CPU at CPL 3 doing `lock add`, `lock xadd`, a `lock cmpxchg` loop, an `xchg`-protected
spinlock around a plain `counter++`, `xchg` of tokens of its own (the values got back must add
up to the values put in), and `lock adc`/`lock sbb` of 2 with the round's low bit as carry-in
(whose carry KVM's exit loses; the engine tells it from the values the counter held), on the
counters' page, which the host traps at the kernel's SYNC. Every
total must be exact: before the engine carried these instructions out again on the current value,
`lock add` at iter=300 ended around 675 of 1200 and the spinlock could hang.

Both kinds of trapped page: the counters' page protected itself (sub-page 31, unused, denied), and
as the guard page of the page below it (whose last sub-page is denied)."""

from __future__ import annotations

import io
import re

import pytest
from conftest import GUESTS

from vmm.devices.ucall import SYNC, Ucall
from vmm.loaders import load_kernel
from vmm.machine import Machine

pytestmark = pytest.mark.kvm

KERNEL = GUESTS / "mb" / "mb-atomics.elf"
NCPUS = 4
PAGE = 4096
LAST_DENIED = 0x7FFFFFFF
OK_STATUS = 49  # the kernel's 0x18 through isa-debug-exit
RUNS = 20
SHORT_ITER = 150  # per CPU, per kind, in each of the RUNS runs (the whole test stays under ~30 s here)


def run_atomics(iterations: int, *, guard: bool = False) -> tuple[str, int, int]:
    """One run; returns the console text, the exit status and how many locked instructions the
    engine carried out again (none of them with a carry it could not tell)."""
    if not KERNEL.exists():
        pytest.fail(f"kernel {KERNEL} is missing: run `make guests`")
    console = io.BytesIO()
    with Machine(128 << 20, smp=NCPUS, irqchip=True, console=console, platform="pc") as m:
        load_kernel(m, KERNEL.read_bytes(), str(KERNEL), cmdline=f"iter={iterations}")
        spp = m.enable_spp()

        def protect(call: Ucall) -> None:
            page = call.args[1]
            if guard:  # the counters' page is trapped as the guard of the page below it
                spp.protect(page - PAGE, LAST_DENIED)
            else:
                spp.protect(page, LAST_DENIED)

        m.ucall.on(SYNC, protect)
        result = m.run(timeout=60)
        trapped = spp.backend.trapped
        text = console.getvalue().decode()
        assert "counters at" in text, text
        counters = int(re.search(r"counters at (0x[0-9a-f]+)", text).group(1), 16)  # type: ignore[union-attr]
        assert counters in trapped and (counters in spp.table.masks) != guard
        assert spp.backend.atomic.ambiguous == 0, text
        return text, result.status, spp.backend.atomic.redone


def check_totals(text: str, status: int, iterations: int) -> None:
    want = NCPUS * iterations
    assert status == OK_STATUS, text
    for kind in ("lock add", "lock xadd", "spinlock"):
        assert f"\n{kind} {want}\n" in text, text
    assert re.search(rf"\nlock cmpxchg {want} \(retries \d+\)\n", text), text
    carried = NCPUS * (2 * iterations + iterations // 2)  # steps of 2 and 3, the carry each round's
    assert f"\nlock adc {carried}\nlock sbb {carried}\n" in text, text
    swapped = re.search(r"\nxchg (\d+) \(sum ([0-9a-f]+) of ([0-9a-f]+)\)\n", text)
    assert swapped is not None and int(swapped.group(1)) == want and swapped.group(2) == swapped.group(3), text
    assert text.endswith("mb-atomics: ok\n"), text


def test_four_cpus_3000_rounds_exact() -> None:
    text, status, redone = run_atomics(3000)
    check_totals(text, status, 3000)
    assert redone > 0  # the vCPUs did race, and the engine carried instructions out again


def test_exact_twenty_runs_in_a_row() -> None:
    for _ in range(RUNS):
        text, status, _ = run_atomics(SHORT_ITER)
        check_totals(text, status, SHORT_ITER)


def test_exact_on_a_guard_page() -> None:
    text, status, _ = run_atomics(300, guard=True)
    check_totals(text, status, 300)
