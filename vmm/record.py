"""Value records for what a run builds before the guest starts.

A `@dataclass` compiles its generated methods when its class statement runs (about 4.5 M
instructions for a frozen one), and a `typing.NamedTuple` compiles every field's annotation
string into a ForwardRef to type-check it (about 0.9 M for four fields); a plain class with
`__slots__` costs about 0.08 M and `collections.namedtuple` 0.15 M. At two dozen records that
difference was a quarter of `pyvmm run`'s start-up (bench group 11). So records on the start-up
path are one of:

- `TupleRecord`: written like a `typing.NamedTuple` class (mypy sees exactly that), built at
  run time by `collections.namedtuple` from the annotations' names, which it never evaluates;
- `Record` / `FrozenRecord`: a slotted class that writes its own typed `__init__`, with
  equality, `repr` and `replace` from its `__slots__` (for records that change, or that are not
  tuples).
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any, TypeVar

    R = TypeVar("R", bound="Record")

__all__ = ["FrozenRecord", "Record", "TupleRecord"]


class Record:
    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    # defining __eq__ leaves a Record unhashable (Python sets __hash__ to None): FrozenRecord hashes

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__name__}({fields})"

    def replace(self: R, **changes: Any) -> R:
        """A copy with `changes` applied (dataclasses.replace's job)."""
        new = object.__new__(self.__class__)
        for name in self.__slots__:
            object.__setattr__(new, name, changes.pop(name) if name in changes else getattr(self, name))
        if changes:
            raise TypeError(f"{self.__class__.__name__} has no field {next(iter(changes))!r}")
        return new


class FrozenRecord(Record):
    """A record nothing changes after it is made: hashable, and setting a field raises."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.__class__.__name__} is immutable: use replace({name}=...)")

    def _init(self, **values: Any) -> None:
        """For `__init__`: set the fields once."""
        for name, value in values.items():
            object.__setattr__(self, name, value)


# collections.namedtuple called through a name mypy does not special-case: its plugin would
# insist on literal arguments
_make_tuple: Any = collections.namedtuple


class _TupleRecordType(type):
    """typing.NamedTupleMeta without the annotation checks: the fields are the annotations'
    names, in order; their defaults are the class attributes of those names."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> type:
        if not bases:  # TupleRecord itself
            return super().__new__(mcs, name, bases, ns)
        fields = list(ns.get("__annotations__", {}))
        defaults = [ns[f] for f in fields if f in ns]
        if any(f not in ns for f in fields[len(fields) - len(defaults):]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        if "__classcell__" in ns:
            raise TypeError(f"{name}: a TupleRecord's methods cannot use super() or __class__")
        cls: type = _make_tuple(name, fields, defaults=defaults, module=ns.get("__module__"))
        for key, value in ns.items():
            if key not in fields and key not in ("__module__", "__qualname__", "__annotations__"):
                setattr(cls, key, value)
        cls.__qualname__ = ns.get("__qualname__", name)
        cls.__annotations__ = ns.get("__annotations__", {})
        return cls


if TYPE_CHECKING:
    from typing import NamedTuple as TupleRecord
else:

    class TupleRecord(metaclass=_TupleRecordType):
        pass

