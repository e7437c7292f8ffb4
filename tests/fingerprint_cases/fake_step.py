"""A stand-in for ``orchestrator.step`` with the attributes ``fingerprint`` relies on.

The real decorator returns a ``Step`` carrying ``__wrapped__`` and
``_is_orchestrator_step = True``; tests use this copy so they depend only on
that contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FakeStep:
    """A decorated function plus its execution settings."""

    _is_orchestrator_step = True

    def __init__(self, fn: Callable[..., Any], settings: dict[str, Any]) -> None:
        self.__wrapped__ = fn
        self.settings = settings

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)


def step(**settings: Any) -> Callable[[Callable[..., Any]], FakeStep]:
    """Decorate a function as a step; ``settings`` are like retries or a timeout."""

    def decorate(fn: Callable[..., Any]) -> FakeStep:
        return FakeStep(fn, settings)

    return decorate
