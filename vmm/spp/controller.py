"""`Spp`: the protected regions of one machine, its policies, and the backend that enforces them.

Both backends report violations here as `SppEvent`s; `judge()` asks the policies in order (the
first verdict that is not None wins; with none, the write is denied). Protection changes made
from a thread other than the vCPU's are handed to the vCPU thread and applied at its next exit.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from vmm.errors import SppRequestError, UserCodeError
from vmm.kvm.vcpu import Vcpu
from vmm.runner.participant import Participant, RunContext
from vmm.spp.event import DENY, VERDICT_TYPES, SppEvent, SppVerdict
from vmm.spp.host import SppHost
from vmm.spp.masks import FULL, PAGE, MaskTable, check_mask, check_page, mask_for_bytes
from vmm.verdict import Verdict

Policy = Callable[[SppEvent], SppVerdict | None]
APPLY_TIMEOUT = 5.0  # seconds a foreign thread waits for the vCPU thread to apply its change


class SppBackend(Protocol):
    name: str

    def apply(self, pages: list[int]) -> None:
        """Enforce the table's current masks for `pages` (called on the vCPU thread, vCPUs out of KVM_RUN)."""

    def run_started(self) -> None: ...

    def on_kick(self, vcpu: Vcpu) -> Verdict: ...

    def run_ended(self) -> None: ...


class Spp(Participant):
    def __init__(self, host: SppHost, make_backend: Callable[[Spp], SppBackend]) -> None:
        self.host = host
        self.table = MaskTable()
        self.policies: list[Policy] = []
        # Every violation judged, in order: SppEvents, and the fields of those an engine logged
        # with no policy or watcher to ask (`log_denied`), which `events` makes into SppEvents
        # when it is read. Building one costs about a fifth of a denied store's handling.
        self._events: list[SppEvent | tuple[Any, ...]] = []
        self._logged = 0  # raw records appended so far (only compared: a change count)
        self._made = 0  # the count when `events` last made them all
        self._events_lock = threading.Lock()  # making them vs dropping the oldest
        self.keep_events = 10_000  # older events are dropped beyond this many
        # called with (event, verdict) after each judgement, on the vCPU thread: statistics, timeline
        self.watchers: list[Callable[[SppEvent, SppVerdict], None]] = []
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._applied = threading.Condition(self._lock)
        self._run_active = False  # a run is under way: changes from other threads wait for a vCPU
        self.backend = make_backend(self)

    # --- protection ------------------------------------------------------------------------
    def protect(self, gpa: int, mask: int = 0, npages: int = 1) -> None:
        """Set the write mask of `npages` pages from `gpa` (bit i set = sub-page i writable)."""
        check_page(gpa)
        check_mask(mask)
        self._check_range(gpa, npages)
        self._update(lambda table: {gpa + i * PAGE: mask for i in range(npages)})

    def protect_pages(self, masks: dict[int, int]) -> None:
        """Set many pages' masks in one change (one memslot rebuild, however many pages)."""
        for page, mask in masks.items():
            check_page(page)
            check_mask(mask)
            self._check_range(page, 1)
        self._update(lambda table: dict(masks))

    def release(self, gpa: int, npages: int = 1) -> None:
        self.protect(gpa, FULL, npages)

    def protect_bytes(self, start: int, end: int) -> None:
        """Deny writes to [start, end), rounded outward to whole 128-byte sub-pages."""
        if not 0 <= start < end:
            raise SppRequestError(f"byte range {start:#x}-{end:#x} is empty or negative")
        first = start & ~(PAGE - 1)
        self._check_range(first, (end - first + PAGE - 1) // PAGE)
        self._update(lambda table: {p: table.get(p) & mask_for_bytes(p, start, end) for p in range(first, end, PAGE)})

    def update_masks(self, compute: Callable[[MaskTable], dict[int, int]]) -> None:
        """Change masks computed from the current table, atomically with respect to other changes
        (two vCPUs unprotecting sub-pages of one page must not undo each other)."""
        self._update(compute)

    def mask(self, gpa: int) -> int:
        return self.table.get(gpa & ~(PAGE - 1))

    @property
    def backend_name(self) -> str:
        """software, kernel:rfc-v1 or kernel:v12."""
        return self.backend.name

    def masks(self) -> dict[int, int]:
        return dict(self.table.masks)

    def _check_range(self, gpa: int, npages: int) -> None:
        """Refuse a range that is not wholly in RAM, by arithmetic: a guest's count can be huge."""
        if npages < 1:
            raise SppRequestError(f"page count {npages} must be at least 1")
        mem = self.host.memory
        gap = mem.first_gap(gpa, npages * PAGE)
        if gap is not None:
            raise SppRequestError(f"SPP page {gap & ~(PAGE - 1):#x} is not in guest RAM")

    def _update(self, compute: Callable[[MaskTable], dict[int, int]]) -> None:
        control = self.host.control
        with self._lock:
            new = compute(self.table)
            old = {p: self.table.get(p) for p in new}
            changed = [p for p, m in new.items() if old[p] != m]
            for p, m in new.items():
                self.table.set(p, m)
            if not changed:
                return
            if not self._run_active:
                self._apply_or_roll_back(changed, old)
                return
            if control.current_vcpu() is None:
                self._pending.update(changed)
        if control.current_vcpu() is not None:  # a handler on a vCPU thread: enforce it now
            with control.others_paused(), self._lock:
                self._apply_or_roll_back(changed, old)
            return
        # another thread: a vCPU applies the change at its next exit; kick them there and wait
        control.kick()
        with self._lock:
            self._applied.wait_for(lambda: not self._pending or not self._run_active, timeout=APPLY_TIMEOUT)
            if self._pending and not self._run_active:
                self.backend.apply(sorted(self._pending))
                self._pending.clear()
            if self._pending:
                raise SppRequestError(
                    f"no vCPU took the protection change within {APPLY_TIMEOUT:g} s "
                    "(is a handler blocking the vCPU threads?)"
                )

    def _apply_or_roll_back(self, pages: list[int], old: dict[int, int]) -> None:
        """Enforce the table for `pages`; if the backend refuses, put the old masks back so the
        table never reports protection that is not in force."""
        try:
            self.backend.apply(pages)
        except BaseException:
            for p, m in old.items():
                self.table.set(p, m)
            raise

    # --- the run's hooks -------------------------------------------------------------------
    def run_started(self, run: RunContext) -> None:
        """Before any vCPU thread starts: from now on only vCPU threads rebuild the memslots."""
        with self._lock:
            self._run_active = True
        self.backend.run_started()

    def on_kick(self, vcpu: Vcpu) -> Verdict:
        self.apply_pending()
        return self.backend.on_kick(vcpu)

    def run_ended(self, run: RunContext) -> None:
        self.backend.run_ended()
        with self._lock:
            self._run_active = False
            self._applied.notify_all()

    @property
    def lock(self) -> threading.Lock:
        """Held while the table is changed or enforced; a backend holds it to keep the memslots still."""
        return self._lock

    def has_pending(self) -> bool:
        """Whether another thread's change waits for the vCPU thread."""
        return bool(self._pending)

    def apply_pending(self) -> None:
        """On a vCPU thread, at an exit: enforce changes other threads made."""
        if not self._pending:
            return
        with self.host.control.others_paused(), self._lock:
            pages = sorted(self._pending)
            self._pending.clear()
            if pages:
                self.backend.apply(pages)
            self._applied.notify_all()

    # --- policies --------------------------------------------------------------------------
    def add_policy(self, policy: Policy) -> None:
        self.policies.append(policy)

    @property
    def events(self) -> list[SppEvent]:
        """Every violation judged, oldest first (the newest `keep_events`); the same list object
        for the machine's life, so a caller may clear it."""
        if self._logged != self._made:
            with self._events_lock:
                logged, events = self._logged, self._events
                for i, e in enumerate(events):
                    if type(e) is tuple:
                        events[i] = SppEvent(*e)
                self._made = logged
        return self._events  # type: ignore[return-value]  # all made, just above

    def log_denied(self, fields: tuple[Any, ...]) -> None:
        """A violation denied because there is no one to ask (no policy, no watcher): `fields`
        are SppEvent's, in order."""
        events = self._events
        if len(events) >= self.keep_events:
            self._drop_oldest()
        events.append(fields)
        self._logged += 1

    def _drop_oldest(self) -> None:
        with self._events_lock:
            del self._events[: self.keep_events // 2]

    def judge(self, event: SppEvent) -> SppVerdict:
        events = self._events
        if len(events) >= self.keep_events:
            self._drop_oldest()
        events.append(event)
        verdict = self._ask_policies(event) if self.policies else DENY  # no call on the default path
        for watch in self.watchers:
            watch(event, verdict)
        return verdict

    def watch(self, watcher: Callable[[SppEvent, SppVerdict], None]) -> None:
        if watcher not in self.watchers:
            self.watchers.append(watcher)

    def _ask_policies(self, event: SppEvent) -> SppVerdict:
        for policy in self.policies:
            try:
                verdict = policy(event)
            except UserCodeError as e:  # a verdict it built with bad fields: the one line says which
                raise UserCodeError(f"SPP policy {getattr(policy, '__name__', policy)!r}: {e}", e.details) from None
            except Exception:
                raise UserCodeError(
                    f"SPP policy {getattr(policy, '__name__', policy)!r} raised an exception", traceback.format_exc()
                ) from None
            if verdict is not None:
                if not isinstance(verdict, VERDICT_TYPES):
                    raise UserCodeError(
                        f"SPP policy {getattr(policy, '__name__', policy)!r} returned {verdict!r}, which is not a "
                        "verdict (Deny, Allow, AllowAndUnprotect, WriteInstead, StopVm, Inject or None)"
                    )
                return verdict
        return DENY
