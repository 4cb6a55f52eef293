"""Dispatcher routing: which handler an exit reason, a port or a guest-physical address reaches.

Lookups go through the dispatcher's own `port_handler` / `mmio_handler` / `dispatch`, which the
hot path uses as well; no vCPU is needed (string I/O, which does need one, is in
tests/kvm/test_string_io.py)."""

from __future__ import annotations

from typing import Any

import pytest

from vmm.errors import ExitStatus
from vmm.kvm.exits import HltExit, ShutdownExit
from vmm.runner.dispatch import Dispatcher
from vmm.verdict import Stop, Verdict


def handler(tag: str) -> Any:
    """A distinct handler that identifies itself by returning a Stop with `tag` as the reason."""

    def h(ex: Any) -> Verdict:
        return Stop(0, tag)

    h.__name__ = f"handler_{tag}"
    return h


def test_exit_kind_routes_to_its_handler_and_later_replaces() -> None:
    d = Dispatcher()
    d.on_exit(HltExit, handler("first"))
    hlt = HltExit(None, None)  # type: ignore[arg-type]  # dispatch reads only the class's reason
    assert d.dispatch(hlt) == Stop(0, "first")
    d.on_exit(HltExit.reason, handler("raw"))  # a raw reason number addresses the same slot
    assert d.dispatch(hlt) == Stop(0, "raw")
    assert d.exit_handler(HltExit) is d.exit_handler(HltExit.reason)


def test_unhandled_exit_default_is_a_fatal_stop_naming_the_exit() -> None:
    d = Dispatcher()
    verdict = d.dispatch(ShutdownExit(None, None))  # type: ignore[arg-type]
    assert isinstance(verdict, Stop)
    assert verdict.status == ExitStatus.UNHANDLED_EXIT
    assert verdict.fatal
    assert "SHUTDOWN" in verdict.reason


def test_unhandled_port_and_address_defaults() -> None:
    d = Dispatcher()
    assert d.port_handler(0x80) is d.unhandled_io
    assert d.mmio_handler(0xFEE00000) is d.unhandled_mmio
    assert d.unhandled_io(object()) is None  # resume the guest; the port reads whatever KVM left
    assert d.unhandled_mmio(object()) is None


def test_port_range_covers_exactly_its_ports() -> None:
    d = Dispatcher()
    uart = handler("uart")
    d.on_io(0x3F8, 8, uart)
    assert d.port_handler(0x3F7) is d.unhandled_io
    assert all(d.port_handler(p) is uart for p in range(0x3F8, 0x400))
    assert d.port_handler(0x400) is d.unhandled_io


def test_overlapping_small_ranges_later_wins() -> None:
    d = Dispatcher()
    wide, narrow = handler("wide"), handler("narrow")
    d.on_io(0x3F8, 8, wide)
    d.on_io(0x3FC, 2, narrow)
    assert d.port_handler(0x3FB) is wide
    assert d.port_handler(0x3FC) is narrow
    assert d.port_handler(0x3FD) is narrow
    assert d.port_handler(0x3FE) is wide


def test_large_range_covers_its_edges() -> None:
    d = Dispatcher()
    big = handler("big")
    d.on_io(0x2000, 0x5000, big)  # larger than the per-port table takes
    assert d.port_handler(0x1FFF) is d.unhandled_io
    assert d.port_handler(0x2000) is big
    assert d.port_handler(0x6FFF) is big
    assert d.port_handler(0x7000) is d.unhandled_io


def test_small_range_registered_after_a_large_one_wins() -> None:
    d = Dispatcher()
    everything, uart = handler("everything"), handler("uart")
    d.on_io(0, 0x10000, everything)
    d.on_io(0x3F8, 8, uart)
    assert d.port_handler(0x3F8) is uart
    assert d.port_handler(0x3F7) is everything


def test_large_range_registered_after_a_small_one_wins() -> None:
    # a catch-all installed last must take over the ports of devices registered before it
    d = Dispatcher()
    uart, everything = handler("uart"), handler("everything")
    d.on_io(0x3F8, 8, uart)
    d.on_io(0, 0x10000, everything)
    assert d.port_handler(0x3F8) is everything
    assert d.port_handler(0xFFFF) is everything


def test_overlapping_large_ranges_later_wins() -> None:
    d = Dispatcher()
    low, high = handler("low"), handler("high")
    d.on_io(0x0000, 0x8000, low)
    d.on_io(0x4000, 0x8000, high)
    assert d.port_handler(0x3FFF) is low
    assert d.port_handler(0x4000) is high
    assert d.port_handler(0xBFFF) is high


@pytest.mark.parametrize(("first", "count"), [(-1, 1), (0, 0), (0xFFFF, 2), (0, 0x10001)])
def test_bad_port_ranges_are_refused(first: int, count: int) -> None:
    with pytest.raises(ValueError, match="bad port range"):
        Dispatcher().on_io(first, count, handler("x"))


def test_mmio_ranges_route_by_address() -> None:
    d = Dispatcher()
    a, b = handler("a"), handler("b")
    d.on_mmio(0xD0000000, 0x1000, a)
    d.on_mmio(0xC0000000, 0x1000, b)  # registered out of address order
    assert d.mmio_handler(0xD0000000) is a
    assert d.mmio_handler(0xD0000FFF) is a
    assert d.mmio_handler(0xD0001000) is d.unhandled_mmio
    assert d.mmio_handler(0xC0000800) is b
    assert d.mmio_handler(0xBFFFFFFF) is d.unhandled_mmio


@pytest.mark.parametrize("base", [0xD0000000, 0xCFFFF800, 0xD0000800, 0xD0000FFF])
def test_overlapping_mmio_range_is_refused(base: int) -> None:
    d = Dispatcher()
    d.on_mmio(0xD0000000, 0x1000, handler("a"))
    with pytest.raises(ValueError, match="overlaps"):
        d.on_mmio(base, 0x1000, handler("b"))
    assert d.mmio_handler(0xD0000000).__name__ == "handler_a"  # the refused one left no trace


def test_adjacent_mmio_ranges_and_removal() -> None:
    d = Dispatcher()
    a, b, c = handler("a"), handler("b"), handler("c")
    d.on_mmio(0x1000, 0x1000, a)
    d.on_mmio(0x2000, 0x1000, b)  # touching is not overlapping
    assert d.mmio_handler(0x1FFF) is a
    assert d.mmio_handler(0x2000) is b
    d.remove_mmio(0x1000)
    assert d.mmio_handler(0x1000) is d.unhandled_mmio
    d.on_mmio(0x1000, 0x1000, c)  # the freed range can be taken again
    assert d.mmio_handler(0x1800) is c


@pytest.mark.parametrize(("base", "size"), [(-1, 0x1000), (0x1000, 0)])
def test_bad_mmio_ranges_are_refused(base: int, size: int) -> None:
    with pytest.raises(ValueError, match="bad MMIO range"):
        Dispatcher().on_mmio(base, size, handler("x"))


def test_handler_for_a_raw_reason_without_x86_class_gets_foreign_and_unknown_views() -> None:
    from vmm.kvm.exits import ForeignExit, Unknown

    d = Dispatcher()
    d.on_exit(28, handler("spp-profile"))  # 28 is ARM_NISV upstream: x86 has no class for it
    assert d.dispatch(ForeignExit(None, None, 28)) == Stop(0, "spp-profile")  # type: ignore[arg-type]
    d.on_exit(99, handler("private"))
    assert d.dispatch(Unknown(None, None, 99)) == Stop(0, "private")  # type: ignore[arg-type]
    verdict = d.dispatch(Unknown(None, None, 98))  # type: ignore[arg-type]
    assert verdict is not None and verdict.status == ExitStatus.UNHANDLED_EXIT


def test_removed_ports_fall_back_to_a_wider_range_or_the_unhandled_handler() -> None:
    d = Dispatcher()
    d.on_io(0, 0x10000, handler("everything"))
    d.on_io(0xF4, 4, handler("exit"))
    d.remove_io(0xF4, 4)
    assert d.port_handler(0xF5)(None) == Stop(0, "everything")
    d.remove_io(0, 0x10000)
    assert d.port_handler(0xF5) is d.unhandled_io
