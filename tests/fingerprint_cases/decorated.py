"""Helpers behind decorators: the wrapped user functions must still be followed."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

OFFSET = 1


def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@logged
def shifted(x: int) -> int:
    return x + OFFSET


@functools.cache
def cached_square(x: int) -> int:
    return x * x


@contextlib.contextmanager
def scoped(x: int) -> Iterator[int]:
    yield x - OFFSET


def step(x: int) -> int:
    with scoped(x) as y:
        return shifted(y) + cached_square(y)
