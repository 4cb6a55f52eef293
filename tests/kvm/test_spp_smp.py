"""Sub-page protection with four vCPUs writing into one protected page at once.

The `mb-smp-spp` kernel announces its `target` page with SYNC(0, address) before it starts the
APs; the host protects it there (sub-pages 0-15 writable, 16-31 denied). Every CPU i then does
K rounds of a locked add into its own allowed sub-page i and a plain store of i + 1 into its own
denied sub-page 16 + i. So the outcome is exact whatever the interleaving: each counter is K, the
denied half stays zero, and there are K events from each vCPU, all at that vCPU's denied word.

Each vCPU runs on its own thread, so the events arrive concurrently, protection changes made on
a vCPU thread pause the other vCPUs, and changes made on other threads are handed to the vCPU
threads: the second test makes all of that happen during the run.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import GUESTS

from vmm.devices.ucall import SYNC, Ucall
from vmm.errors import ExitStatus
from vmm.loaders import load_kernel
from vmm.machine import Machine, RunResult
from vmm.spp.controller import Spp
from vmm.spp.event import SppEvent, SppVerdict, StopVm
from vmm.spp.software import WATCHDOG_PERIOD, SoftwareSpp

pytestmark = pytest.mark.kvm

KERNEL: Path = GUESTS / "mb" / "mb-smp-spp.elf"
NCPUS = 4
K = 150  # the kernel's ITERATIONS
PAGE, SUBPAGE = 4096, 128
DENIED_OFFSET = 2048
MASK = 0x0000FFFF  # sub-pages 0-15 writable, 16-31 denied
# Equal to MASK on every sub-page the guest writes (0-3 allowed, 16-19 denied): switching between
# the two is a real protection change, with the pausing that goes with it, that leaves the
# expected outcome alone. Re-protecting with MASK itself would be no change, and Spp skips it.
NARROW_MASK = 0x0000000F
OTHER = 0x400000  # a page the kernel never touches (it lives below 2 MiB)
MEM = 128 << 20
RUN_TIMEOUT = 20.0  # a working run takes well under a second; a hang ends as a TIMEOUT status

EXPECTED_SERIAL = (
    f"spp-smp: {NCPUS} cpus, {K} iterations each\n"
    + "".join(f"cpu {i}: allowed {K}, denied 0\n" for i in range(NCPUS))
    + "spp-smp: done\n"
).encode()


class SmpSppRun:
    """A 4-vCPU machine with the kernel loaded and SPP on; the target page is protected at the
    kernel's SYNC, on the vCPU thread that sent it."""

    def __init__(self, m: Machine, console: io.BytesIO) -> None:
        self.m = m
        self.console = console
        self.spp: Spp = m.enable_spp()
        self.events: list[SppEvent] = []
        self.target: int | None = None
        self.synced = threading.Event()
        self.after_sync: Callable[[], None] | None = None  # runs on the BSP's thread, APs not started
        m.ucall.on(SYNC, self._on_sync)

    def _on_sync(self, call: Ucall) -> None:
        assert call.args[0] == 0, f"unexpected SYNC stage {call.args[0]}"
        self.target = call.args[1]
        self.spp.protect(self.target, MASK)
        self.synced.set()
        if self.after_sync is not None:
            self.after_sync()

    def record(self, event: SppEvent) -> None:
        self.events.append(event)  # list.append is atomic: vCPU threads call this concurrently

    def run(self) -> RunResult:
        return self.m.run(timeout=RUN_TIMEOUT)

    def denied_word(self, vcpu: int) -> int:
        assert self.target is not None
        return self.target + DENIED_OFFSET + vcpu * SUBPAGE

    def check_outcome(self, result: RunResult) -> None:
        """Exact counts in memory, a zero denied half, and K events from each vCPU, each at that
        vCPU's denied word with the value it stored."""
        assert result.status == ExitStatus.OK, f"{result.reason}\n{result.report}"
        assert self.console.getvalue() == EXPECTED_SERIAL
        assert self.target is not None and self.target % PAGE == 0
        page = self.m.memory.read(self.target, PAGE)
        expected = bytearray(PAGE)
        for i in range(NCPUS):
            expected[i * SUBPAGE : i * SUBPAGE + 4] = K.to_bytes(4, "little")
        assert page[:DENIED_OFFSET] == bytes(expected[:DENIED_OFFSET])
        assert page[DENIED_OFFSET:] == bytes(PAGE - DENIED_OFFSET)
        assert len(self.events) == NCPUS * K
        per_vcpu = {i: 0 for i in range(NCPUS)}
        for e in self.events:
            per_vcpu[e.vcpu] += 1
            word, stored = self.denied_word(e.vcpu), (e.vcpu + 1).to_bytes(4, "little")
            if e.backend == "single-step":
                # The engine's watchdog may take a vCPU kept out of KVM_RUN for a while (by the
                # GIL, say) for KVM retrying the store, and single-step it: the write is still
                # judged and dropped, but the event then holds only the bytes that changed.
                stored = stored.rstrip(b"\0")
            assert (e.gpa, e.write_gpa, e.size, e.data) == (word, word, len(stored), stored), e.describe()
        assert per_vcpu == {i: K for i in range(NCPUS)}


@contextmanager
def smp_spp_machine() -> Iterator[SmpSppRun]:
    if not KERNEL.exists():
        pytest.fail(f"kernel {KERNEL} is missing: run `make guests`")
    console = io.BytesIO()
    # the PC platform writes the ACPI tables the kernel finds its CPUs in, before the kernel is
    # loaded (as `pyvmm run` does), so the kernel's image wins wherever the two overlap
    with Machine(MEM, smp=NCPUS, irqchip=True, console=console, platform="pc") as m:
        load_kernel(m, KERNEL.read_bytes(), str(KERNEL))
        yield SmpSppRun(m, console)


def vcpu_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pyvmm-vcpu")]


def test_every_cpu_counts_exactly() -> None:
    with smp_spp_machine() as r:
        r.spp.add_policy(r.record)
        result = r.run()
        r.check_outcome(result)
        assert r.spp.mask(r.target or 0) == MASK
    assert vcpu_threads() == []


def test_exact_while_protection_changes_from_every_side() -> None:
    with smp_spp_machine() as r:
        spp, control = r.spp, r.m.control
        lock = threading.Lock()
        reprotects: list[int] = []  # masks the policy set, in order

        def reprotect_every_50(event: SppEvent) -> SppVerdict | None:
            """On the vCPU thread of the event: every 50th event switches the target's mask."""
            r.record(event)
            with lock:
                n = len(r.events)
                if n % 50:
                    return None
                mask = NARROW_MASK if len(reprotects) % 2 == 0 else MASK
                reprotects.append(mask)
            # outside the lock: the pause waits for the other vCPUs, which may be in this policy
            assert r.target is not None
            spp.protect(r.target, mask)
            return None

        spp.add_policy(reprotect_every_50)

        # Which thread made each change of OTHER take effect: a vCPU thread (the foreign thread's
        # change handed over during the run) or the foreign thread itself (no vCPU running).
        applied_by_vcpu = {"other": 0, "target": 0}
        backend_apply: Callable[[list[int]], None] = spp.backend.apply

        def counting_apply(pages: list[int]) -> None:
            if control.current_vcpu() is not None:
                if OTHER in pages:
                    applied_by_vcpu["other"] += 1
                if r.target in pages:
                    applied_by_vcpu["target"] += 1
            backend_apply(pages)

        spp.backend.apply = counting_apply  # type: ignore[method-assign]

        stop = threading.Event()
        errors: list[BaseException] = []
        toggles = 0

        def toggle_other() -> None:
            """Protect and release OTHER until told to stop. It starts at the SYNC, once every vCPU
            thread is in its loop: before that a change is applied on this thread directly, which
            is not what this test is about and could overlap the vCPUs' first KVM_RUN."""
            nonlocal toggles
            try:
                if not r.synced.wait(RUN_TIMEOUT):
                    return
                while not stop.is_set():
                    spp.protect(OTHER, 0)
                    spp.release(OTHER)
                    toggles += 1
            except BaseException as e:  # reported by the test thread
                errors.append(e)

        foreign = threading.Thread(target=toggle_other, name="spp-toggler")
        foreign.start()
        start = time.perf_counter()
        try:
            result = r.run()
        finally:
            stop.set()
            foreign.join(RUN_TIMEOUT)
        elapsed = time.perf_counter() - start
        assert not foreign.is_alive(), "the protecting thread hung"
        assert errors == []
        r.check_outcome(result)
        assert elapsed < 30
        assert len(reprotects) == NCPUS * K // 50
        assert applied_by_vcpu["target"] == 1 + len(reprotects)  # the SYNC's protect, then the policy's
        assert applied_by_vcpu["other"] >= 1, f"no change of OTHER reached a running vCPU ({toggles} toggles)"
        assert spp.mask(OTHER) == 0xFFFFFFFF
        assert spp.mask(r.target or 0) == reprotects[-1]
    assert vcpu_threads() == []


def test_policy_stops_the_machine_from_vcpu_2() -> None:
    with smp_spp_machine() as r:
        seen: list[SppEvent] = []

        def stop_on_vcpu_2(event: SppEvent) -> SppVerdict | None:
            seen.append(event)
            return StopVm("vCPU 2 wrote a denied sub-page") if event.vcpu == 2 else None

        r.spp.add_policy(stop_on_vcpu_2)
        result = r.run()
        assert result.status == ExitStatus.SPP_STOP, f"{result.reason}\n{result.report}"
        assert result.reason.startswith("vCPU 2: vCPU 2 wrote a denied sub-page: "), result.reason
        assert f"at {r.denied_word(2):#x}" in result.reason
        from_2 = [e for e in seen if e.vcpu == 2]
        # vCPU 2 stops at its first event; the others may still have been judged meanwhile
        assert len(from_2) == 1 and from_2[0].gpa == r.denied_word(2)
        # vCPU 2 stopped in its first round: its add landed, its denied store did not
        assert r.m.memory.read_u32((r.target or 0) + 2 * SUBPAGE) == 1
        assert r.m.memory.read_u32(r.denied_word(2)) == 0
    assert vcpu_threads() == []


def test_vcpus_asleep_in_kvm_are_not_single_stepped() -> None:
    """Until the BSP's SIPI the APs wait inside KVM_RUN, and after their work they halt there with
    interrupts off: no exits, one RIP, for as long as it takes. The SPP watchdog must not take that
    for KVM retrying a write; single-stepping such a vCPU would wait in KVM_RUN for good, with every
    other vCPU paused. The host holds the BSP at the SYNC for several watchdog periods."""
    with smp_spp_machine() as r:
        r.spp.add_policy(r.record)
        r.after_sync = lambda: time.sleep(6 * WATCHDOG_PERIOD)
        result = r.run()
        r.check_outcome(result)
        assert isinstance(r.spp.backend, SoftwareSpp)
        assert r.spp.backend.stepped == 0
    assert vcpu_threads() == []
