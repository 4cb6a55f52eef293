"""The start-up path's enumerations (vmm.light_enum) behave as enum's do for everything pyvmm and
its users do with them: each light class is checked against an `enum` class of the same body."""

from __future__ import annotations

import copy
import enum
import pickle

import pytest

from vmm.cpu.modes import CpuMode
from vmm.errors import ExitStatus
from vmm.light_enum import LightEnum, LightIntEnum
from vmm.runner.control import VcpuState


class Colour(LightEnum):
    RED = "red"
    BLUE = "blue"


class RealColour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(LightIntEnum):
    LOW = 1
    HIGH = 7


class RealLevel(enum.IntEnum):
    LOW = 1
    HIGH = 7


@pytest.mark.parametrize(("light", "real"), [(Colour, RealColour), (Level, RealLevel)])
def test_members_lookup_and_text_match_enum(light: type, real: type) -> None:
    assert [(m.name, m.value) for m in light] == [(m.name, m.value) for m in real]  # type: ignore[attr-defined]
    assert len(light) == len(real)  # type: ignore[arg-type]
    def renamed(text: str) -> str:  # the real class's name in its members' text, as the light one's
        return text.replace(real.__name__, light.__name__)

    for m, r in zip(light, real, strict=True):  # type: ignore[call-overload]
        assert light(r.value) is m and light[r.name] is m
        assert isinstance(m, light) and m in light  # type: ignore[operator]
        assert repr(m) == renamed(repr(r)) and str(m) == renamed(str(r)) and f"{m}" == renamed(f"{r}")
        assert pickle.loads(pickle.dumps(m)) is m and copy.copy(m) is m and copy.deepcopy(m) is m
        assert hash(m) == hash(r)
    with pytest.raises(ValueError, match="is not a valid"):
        light("no such value")
    with pytest.raises(ValueError, match="is not a valid"):
        light([])  # unhashable: no member either
    with pytest.raises(KeyError):
        light["NOPE"]


def test_int_members_are_ints() -> None:
    assert Level.HIGH == 7 and Level.HIGH + 1 == 8 and f"{Level.LOW:d}" == "1"
    assert {7: "x"}[Level.HIGH] == "x" and Level(7) is Level.HIGH
    assert Level.LOW < Level.HIGH


def test_plain_members_equal_only_themselves() -> None:
    assert Colour.RED == Colour.RED and Colour.RED != "red" and Colour.RED != Colour.BLUE
    assert {Colour.RED: 1}[Colour("red")] == 1


def test_members_cannot_be_reassigned_and_bodies_hold_only_members() -> None:
    with pytest.raises(AttributeError):
        Colour.RED = Colour.BLUE  # type: ignore[misc]
    with pytest.raises(TypeError, match="already"):

        class Twice(LightEnum):
            A = 1
            B = 1

    with pytest.raises(TypeError, match="members only"):

        class WithMethod(LightEnum):
            A = 1

            def method(self) -> None:
                pass


def test_pyvmm_enumerations_keep_their_members() -> None:
    assert [m.value for m in CpuMode] == ["real", "protected", "long"]
    assert CpuMode("long") is CpuMode.LONG
    assert ExitStatus(130) is ExitStatus.INTERRUPTED and int(ExitStatus.USAGE) == 2
    assert len({int(s) for s in ExitStatus}) == len(ExitStatus)
    assert VcpuState["PARKED"].value == "parked"
