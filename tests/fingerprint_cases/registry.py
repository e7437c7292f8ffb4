"""A module-level dict of functions, as registries are written."""

from __future__ import annotations


def double(x: int) -> int:
    return 2 * x


def square(x: int) -> int:
    return x * x


TRANSFORMS = {"double": double, "square": square}


def apply(name: str, x: int) -> int:
    return TRANSFORMS[name](x)
