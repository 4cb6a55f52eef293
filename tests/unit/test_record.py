"""vmm.record: the start-up records' base classes behave as the types they stand in for."""

from __future__ import annotations

import pickle
from typing import NamedTuple

import pytest

from vmm.record import FrozenRecord, Record, TupleRecord


class Placed(TupleRecord):
    """A docstring that stays."""

    base: int
    size: int
    name: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        return self.base + self.size

    def describe(self) -> str:
        return f"{self.name}@{self.base:#x}"


class PlacedTyping(NamedTuple):
    base: int
    size: int
    name: str | None = None
    tags: tuple[str, ...] = ()


def test_a_tuple_record_is_the_named_tuple_typing_would_build() -> None:
    p = Placed(0x1000, 0x10, "uart")
    t = PlacedTyping(0x1000, 0x10, "uart")
    assert p == t and tuple(p) == tuple(t) and hash(p) == hash(t)
    assert Placed._fields == PlacedTyping._fields == ("base", "size", "name", "tags")
    assert Placed._field_defaults == PlacedTyping._field_defaults
    assert repr(p) == "Placed(base=4096, size=16, name='uart', tags=())"
    base, size, name, tags = p
    assert (base, size, name, tags) == (0x1000, 0x10, "uart", ())
    assert p._replace(size=0x20).end == 0x1020
    assert p.describe() == "uart@0x1000" and Placed.__doc__ == "A docstring that stays."
    assert Placed.__module__ == __name__ and Placed.__qualname__ == "Placed"
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(AttributeError):
        p.base = 0  # type: ignore[misc]


def test_a_default_before_a_field_without_one_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default"):

        class Bad(TupleRecord):
            a: int = 0
            b: int


def test_a_tuple_record_cannot_use_super() -> None:
    with pytest.raises(TypeError, match="super"):

        class Bad(TupleRecord):
            a: int

            def __repr__(self) -> str:
                return super().__repr__()


class Entry(Record):
    __slots__ = ("key", "value")

    def __init__(self, key: int, value: int = 0) -> None:
        self.key, self.value = key, value


class Fixed(FrozenRecord):
    __slots__ = ("key", "value")
    key: int
    value: int

    def __init__(self, key: int, value: int = 0) -> None:
        self._init(key=key, value=value)


def test_a_record_compares_by_its_fields_and_is_not_hashable() -> None:
    e = Entry(1, 2)
    assert e == Entry(1, 2) and e != Entry(1, 3) and e != (1, 2)
    assert repr(e) == "Entry(key=1, value=2)"
    e.value = 5
    assert e.replace(key=7) == Entry(7, 5) and e == Entry(1, 5)
    with pytest.raises(TypeError):
        hash(e)
    with pytest.raises(TypeError, match="no field 'other'"):
        e.replace(other=1)


def test_a_frozen_record_hashes_and_refuses_changes() -> None:
    f = Fixed(1, 2)
    assert hash(f) == hash(Fixed(1, 2)) and {f: 1}[Fixed(1, 2)] == 1
    assert f.replace(value=3) == Fixed(1, 3) and f == Fixed(1, 2)
    with pytest.raises(AttributeError, match="immutable"):
        f.value = 9  # type: ignore[misc]
