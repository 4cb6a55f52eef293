"""Enumerations for the modules a run loads before the guest starts, without the `enum` module.

Importing `enum` costs about 8 M instructions under callgrind, an `IntEnum` of thirty members
about 2 M more, and `signal` (its handlers and numbers are enums) another 3.5 M: 12 M of the
161 M a `pyvmm run` took (bench group 11), for classes that only name a few constants. So
`CpuMode`, `ExitStatus` and `VcpuState` are written as ordinary `enum.Enum` / `enum.IntEnum`
classes (mypy sees exactly that, `match` exhaustiveness included) and built at run time by a
small metaclass that does what those need and no more:

- members are instances of the class, in definition order, each with `name` and `value`;
- `Cls(value)` finds a member (ValueError otherwise), `Cls["NAME"]` by name, `iter`, `len`, `in`;
- an `IntEnum` member is an `int` (arithmetic, `sys.exit`, `%d` and `str` give the number);
- members pickle and copy as themselves; no aliases, no `auto()`, no methods in the body.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["LightEnum", "LightIntEnum"]


class _LightEnumType(type):
    _members_: dict[str, Any]
    _by_value_: dict[Any, Any]
    _make_: Any  # the member of `value`: LightEnum's and LightIntEnum's own

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> _LightEnumType:
        members = {k: v for k, v in ns.items() if not k.startswith("_")}
        for k in members:
            del ns[k]
        cls = super().__new__(mcs, name, bases, ns)
        cls._members_ = {}
        cls._by_value_ = {}
        if not any(isinstance(b, _LightEnumType) for b in bases):  # LightEnum and LightIntEnum themselves
            if members:
                raise TypeError(f"{name}: only a subclass of LightEnum or LightIntEnum has members")
            return cls
        for key, value in members.items():
            if callable(value) or isinstance(value, (staticmethod, classmethod, property)):
                raise TypeError(f"{name}.{key}: a light enum holds members only")
            if value in cls._by_value_:
                raise TypeError(f"{name}.{key}: the value {value!r} is already {cls._by_value_[value]!r}")
            member = cls._make_(cls, value)
            member._name_ = key
            member._value_ = value
            cls._members_[key] = cls._by_value_[value] = member
            type.__setattr__(cls, key, member)
        return cls

    def __call__(cls, value: Any) -> Any:
        try:
            return cls._by_value_[value]
        except (KeyError, TypeError):  # TypeError: an unhashable value is no member's either
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    def __getitem__(cls, name: str) -> Any:
        return cls._members_[name]

    def __iter__(cls) -> Any:
        return iter(tuple(cls._members_.values()))

    def __len__(cls) -> int:
        return len(cls._members_)

    def __contains__(cls, member: object) -> bool:
        return isinstance(member, cls)

    def __setattr__(cls, name: str, value: Any) -> None:
        if name in cls.__dict__.get("_members_", ()):
            raise AttributeError(f"cannot reassign member {name!r}")
        super().__setattr__(name, value)


class _Member:
    __slots__ = ()
    _name_: str
    _value_: Any

    @property
    def name(self) -> str:
        return self._name_

    @property
    def value(self) -> Any:
        return self._value_

    def __reduce_ex__(self, protocol: object) -> tuple[Any, tuple[Any]]:
        return self.__class__, (self._value_,)

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: object) -> Any:
        return self

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}.{self._name_}: {self._value_!r}>"


if TYPE_CHECKING:
    from enum import Enum as LightEnum
    from enum import IntEnum as LightIntEnum
else:

    class LightEnum(_Member, metaclass=_LightEnumType):
        __slots__ = ("_name_", "_value_")

        @staticmethod
        def _make_(cls: type, value: Any) -> Any:
            return object.__new__(cls)

        def __str__(self) -> str:
            return f"{self.__class__.__name__}.{self._name_}"

        def __hash__(self) -> int:
            return hash(self._name_)

    class LightIntEnum(int, _Member, metaclass=_LightEnumType):
        # an int subclass cannot have non-empty __slots__: the name and value live in a __dict__
        @staticmethod
        def _make_(cls: type, value: Any) -> Any:
            return int.__new__(cls, value)

        __repr__ = _Member.__repr__  # int's comes first in the MRO
        __str__ = int.__repr__  # as IntEnum's since Python 3.11: str() and f-strings give the number
        __format__ = int.__format__
        __hash__ = int.__hash__
