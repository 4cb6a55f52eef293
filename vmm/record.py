"""Value records for what a run builds before the guest starts.

A `@dataclass` compiles its generated methods when its class statement runs (about 4.5 M
instructions for a frozen one) and a `typing.NamedTuple` type-checks every field's annotation
(about 1.5 M); a plain class with `__slots__` costs about 0.14 M. At two dozen records that
difference was a quarter of `pyvmm run`'s start-up (bench group 11). So records on the start-up
path subclass `Record`: each writes its own `__init__` (typed, so mypy checks every
construction), and equality, `repr` and `replace` come from its `__slots__`.
"""

from __future__ import annotations

from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


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
