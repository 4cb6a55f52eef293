"""The address-space type used for ports and MMIO: placement, overlaps, replacement, offsets."""

from __future__ import annotations

from typing import Any

import pytest

from vmm.board.bus import AddressSpace
from vmm.errors import ConfigError
from vmm.verdict import Stop, Verdict


def handler(tag: str) -> Any:
    def h(ex: Any) -> Verdict:
        return Stop(0, tag)

    return h


def ports() -> AddressSpace:
    return AddressSpace("port", 0x10000, direct_index=True)


def mmio() -> AddressSpace:
    return AddressSpace("address", 1 << 52, direct_index=False)


@pytest.mark.parametrize("space", [ports, mmio], ids=["ports", "mmio"])
def test_a_range_covers_exactly_its_addresses(space: Any) -> None:
    s = space()
    uart = handler("uart")
    s.insert(0x3F8, 8, uart, name="uart")
    assert s.lookup(0x3F7) is None
    assert all(s.lookup(a).handler is uart for a in range(0x3F8, 0x400))  # type: ignore[union-attr]
    assert s.lookup(0x400) is None


@pytest.mark.parametrize("space", [ports, mmio], ids=["ports", "mmio"])
def test_an_overlap_is_refused_naming_both_ranges(space: Any) -> None:
    s = space()
    s.insert(0x3F8, 8, handler("uart"), name="isa-serial")
    with pytest.raises(ConfigError) as e:
        s.insert(0x3FC, 2, handler("mine"), name="handler mine")
    msg = str(e.value)
    assert "0x3fc-0x3fd (handler mine)" in msg and "0x3f8-0x3ff (isa-serial)" in msg and "replace=True" in msg
    assert "\n" not in msg
    assert s.lookup(0x3FC).name == "isa-serial"  # type: ignore[union-attr]  # the refused one left no trace


@pytest.mark.parametrize("space", [ports, mmio], ids=["ports", "mmio"])
def test_replace_takes_over_exactly_the_covered_addresses(space: Any) -> None:
    s = space()
    s.insert(0x3F8, 8, handler("uart"), name="uart")
    s.insert(0x3FC, 2, handler("mine"), name="mine", replace=True)
    names = [s.lookup(a).name for a in range(0x3F8, 0x400)]  # type: ignore[union-attr]
    assert names == ["uart"] * 4 + ["mine"] * 2 + ["uart"] * 2
    # the UART's remaining parts keep its base, so its handler still sees its own offsets
    assert {s.lookup(a).base for a in (0x3F8, 0x3FE)} == {0x3F8}  # type: ignore[union-attr]
    assert s.lookup(0x3FD).base == 0x3FC  # type: ignore[union-attr]


def test_replace_over_several_mappings_and_adjacency() -> None:
    s = mmio()
    s.insert(0x1000, 0x1000, handler("a"), name="a")
    s.insert(0x2000, 0x1000, handler("b"), name="b")  # touching is not overlapping
    s.insert(0x1800, 0x1000, handler("c"), name="c", replace=True)
    assert [m.name for m in s.mappings()] == ["a", "c", "b"]
    assert [(m.start, m.end) for m in s.mappings()] == [(0x1000, 0x1800), (0x1800, 0x2800), (0x2800, 0x3000)]


def test_remove_keeps_the_parts_outside() -> None:
    s = ports()
    s.insert(0x80, 16, handler("wide"), name="wide")
    removed = s.remove(0x84, 4)
    assert [m.name for m in removed] == ["wide"]
    assert s.lookup(0x84) is None and s.lookup(0x87) is None
    assert s.lookup(0x83).name == "wide" and s.lookup(0x88).name == "wide"  # type: ignore[union-attr]


def test_move_keeps_the_device_offsets() -> None:
    s = ports()
    s.insert(0xF4, 4, handler("exit"), name="isa-debug-exit")
    moved = s.move(0xF4, 0x501)
    assert s.lookup(0xF4) is None
    assert (moved.start, moved.end, moved.base) == (0x501, 0x505, 0x501)
    assert s.lookup(0x503).name == "isa-debug-exit"  # type: ignore[union-attr]


def test_move_onto_a_taken_range_is_refused_and_changes_nothing() -> None:
    s = ports()
    s.insert(0xF4, 4, handler("exit"), name="isa-debug-exit")
    s.insert(0x3F8, 8, handler("uart"), name="uart")
    with pytest.raises(ConfigError, match="overlaps"):
        s.move(0xF4, 0x3FA)
    assert s.lookup(0xF4).name == "isa-debug-exit"  # type: ignore[union-attr]


@pytest.mark.parametrize(("start", "size"), [(-1, 1), (0, 0), (0xFFFF, 2), (0, 0x10001)])
def test_ranges_outside_the_port_space_are_refused(start: int, size: int) -> None:
    with pytest.raises(ConfigError, match="bad port range"):
        ports().insert(start, size, handler("x"), name="x")


def test_the_port_index_follows_every_change() -> None:
    s = ports()
    s.insert(0, 0x10000, handler("all"), name="all")
    s.insert(0x3F8, 8, handler("uart"), name="uart", replace=True)
    assert s.index[0x3F8].name == "uart" and s.index[0x3F7].name == "all"
    s.remove(0, 0x10000)
    assert s.index == {}


def test_only_the_mapped_handler_may_let_stores_through_and_any_change_forgets_them() -> None:
    space = mmio()
    ram = memoryview(bytearray(0x1000))
    engine, other = handler("engine"), handler("other")
    space.insert(0x9000, 0x1000, engine, name="ram")
    space.store_through(other, 0x9000 >> 7, ram, 0x9000)  # a wrapper's inner handler: no
    assert space.stores == {}
    space.store_through(engine, 0x9080 >> 7, ram, 0x9000)
    assert space.stores == {0x9080 >> 7: (ram, 0x9000)}
    live = space.stores
    space.insert(0x9100, 0x80, other, name="device", replace=True)  # the store index goes with any change
    assert live == {} and space.stores is live
    space.store_through(engine, 0x9100 >> 7, ram, 0x9000)  # now the device's block
    assert space.stores == {}
    space.store_through(engine, 0x9000 >> 7, ram, 0x9000)
    space.forget_stores()
    assert space.stores == {}


def test_a_block_the_mapping_covers_only_in_part_is_not_let_through() -> None:
    space = mmio()
    ram = memoryview(bytearray(0x1000))
    engine = handler("engine")
    space.insert(0x9000, 0x40, engine, name="ram")
    space.store_through(engine, 0x9000 >> 7, ram, 0x9000)
    assert space.stores == {}
