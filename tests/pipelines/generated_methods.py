"""Steps return instances of classes whose methods ``dataclass``, ``enum`` and ``namedtuple`` write.

Workers get these classes by value (cloudpickle). For tests/test_executors.py: an
output has one digest on every executor, and a worker's output loads in the driver
as the class defined here (a slotted dataclass too).
"""

import collections
import enum
from dataclasses import dataclass
from typing import NamedTuple

from orchestrator import pipeline, step


@dataclass
class Plain:
    x: float

    def doubled(self) -> float:
        return self.x * 2


@dataclass(slots=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True, slots=True, order=True)
class FrozenPoint:
    x: float


class Split(NamedTuple):
    n_train: int
    n_test: int = 0

    def total(self) -> int:
        return self.n_train + self.n_test


Pair = collections.namedtuple("Pair", "a b")


class Color(enum.Enum):
    RED = 1
    GREEN = enum.auto()

    def label(self) -> str:
        return self.name.lower()


class Perm(enum.IntFlag):
    R = 4
    W = 2


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b

    def __eq__(self, other: object) -> bool:
        return type(other) is Slotted and (self.a, self.b) == (other.a, other.b)


def expected() -> dict:
    """What each step returns, made here (in the driver): keyed by step name."""
    return {"plain": Plain(1.5), "point": Point(1.0, 2.0), "frozen_point": FrozenPoint(3.0),
            "split": Split(80, 20), "pair": Pair(1, "b"), "color": Color.GREEN, "perm": Perm.R | Perm.W,
            "slotted": Slotted(1, 2)}


@step
def plain() -> Plain:
    return Plain(1.5)


@step
def point() -> Point:
    return Point(1.0, 2.0)


@step
def frozen_point() -> FrozenPoint:
    return FrozenPoint(3.0)


@step
def split() -> Split:
    return Split(80, 20)


@step
def pair() -> Pair:
    return Pair(1, "b")


@step
def color() -> Color:
    return Color.GREEN


@step
def perm() -> Perm:
    return Perm.R | Perm.W


@step
def slotted() -> Slotted:
    return Slotted(1, 2)


@step
def check(values: list, tag: str) -> dict:
    """What a step that takes them receives: each of the classes defined here, equal to one made here."""
    return {"tag": tag, "same": [type(v).__qualname__ for v, e in zip(values, expected().values())
                                 if type(v) is type(e) and v == e]}


@pipeline
def generated_methods(tag: str = "a"):
    values = [plain(), point(), frozen_point(), split(), pair(), color(), perm(), slotted()]
    return check(values, tag)
