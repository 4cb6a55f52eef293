"""Write watchpoints' masks and SPP policy without KVM: the sub-pages holding watched bytes are
denied (a watch across a page boundary in both pages), removal releases them; the policy lets a
neighbour's write through without a call, turns an overlapping write into Allow(then=...) whose
call reports the value after the write, and leaves pages it does not own to the other policies."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from vmm.debug.events import DebugEvent
from vmm.debug.watch import Watchpoints
from vmm.errors import ConfigError
from vmm.spp.event import ALLOW, Allow, SppEvent
from vmm.spp.masks import FULL, MaskTable
from vmm.verdict import Stop


class FakeSpp:
    def __init__(self) -> None:
        self.table = MaskTable()
        self.policies: list[Any] = []

    def mask(self, page: int) -> int:
        return self.table.get(page)

    def protect_pages(self, masks: dict[int, int]) -> None:
        for page, mask in masks.items():
            self.table.set(page, mask)


class Ram:
    def __init__(self) -> None:
        self.data = bytearray(0x10000)

    def contains(self, gpa: int, n: int) -> bool:
        return gpa >= 0 and gpa + n <= len(self.data)

    def read(self, gpa: int, n: int) -> bytes:
        return bytes(self.data[gpa : gpa + n])


def watchpoints() -> tuple[Watchpoints, FakeSpp, Ram]:
    spp, ram = FakeSpp(), Ram()
    cpu = SimpleNamespace(index=0, translate=lambda gva: gva if gva < 0x10000 else None, get_regs=lambda: "regs")
    return Watchpoints(lambda: spp, [cpu], ram), spp, ram  # type: ignore[arg-type]


def event(gpa: int, data: bytes) -> SppEvent:
    return SppEvent(gpa, 0, 0, 0x1234, "software", gpa, len(data), data)


def test_masks_deny_the_watched_subpages_and_removal_releases_them() -> None:
    w, spp, _ = watchpoints()
    wid = w.add(0x2000 + 130, 8, "w", lambda e: None)
    assert spp.mask(0x2000) == FULL & ~(1 << 1)
    across = w.add(0x3FFC, 8, "w", lambda e: None)  # 4 bytes in each of two pages
    assert spp.mask(0x3000) == FULL & ~(1 << 31) and spp.mask(0x4000) == FULL & ~1
    assert w.owned == {0x2000, 0x3000, 0x4000}
    w.remove(wid)
    w.remove(across)
    assert spp.table.masks == {} and w.owned == set()
    assert spp.policies == [w._policy]


def test_the_policy_reports_overlapping_writes_only() -> None:
    w, _, ram = watchpoints()
    seen: list[DebugEvent] = []
    w.add(0x2000 + 8, 8, "w", lambda e: seen.append(e) or None)
    assert w._policy(event(0x2000, b"\x01" * 8)) is ALLOW  # the neighbour: through, no call
    assert w._policy(event(0x5000, b"\x01")) is None  # not a watched page: the other policies'
    verdict = w._policy(event(0x2000 + 12, b"\x07\x00"))
    assert isinstance(verdict, Allow) and verdict.then is not None
    ram.data[0x2000 + 12] = 7  # the engine applies the write before calling then()
    assert verdict.then() is None
    (e,) = seen
    assert (e.kind, e.address, e.write_address, e.written) == ("watch", 0x2008, 0x200C, b"\x07\x00")
    assert e.value == bytes([0, 0, 0, 0, 7, 0, 0, 0])


def test_a_handlers_stop_is_the_verdict() -> None:
    w, _, _ = watchpoints()
    w.add(0x2000, 4, "w", lambda e: Stop(42, "seen"))
    verdict = w._policy(event(0x2000, b"\x01"))
    assert isinstance(verdict, Allow) and verdict.then is not None and verdict.then() == Stop(42, "seen")


def test_refusals() -> None:
    w, spp, _ = watchpoints()
    with pytest.raises(ConfigError, match="read watchpoints are not available"):
        w.add(0x2000, 4, "r", lambda e: None)
    with pytest.raises(ConfigError, match="use 'w'"):
        w.add(0x2000, 4, "x", lambda e: None)
    with pytest.raises(ConfigError, match="not mapped to guest RAM"):
        w.add(0xFFFC, 8, "w", lambda e: None)
    with pytest.raises(ConfigError, match="not callable"):
        w.add(0x2000, 4, "w", 5)  # type: ignore[arg-type]
    spp.table.set(0x6000, 0)
    with pytest.raises(ConfigError, match="SPP protection of its own"):
        w.add(0x6000, 4, "w", lambda e: None)
