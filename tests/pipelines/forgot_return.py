"""A step annotated ``-> list`` that forgets to ``return``; its consumer fails on the None.

No ``from __future__ import annotations`` here: annotations are real types
(tests/test_runner.py has string annotations, which the same hint reads).
"""

from orchestrator import pipeline, step


@step
def load(n: int) -> list:
    xs = list(range(n))  # noqa: F841 - the missing `return` is the point


@step
def maybe(n: int) -> list | None:
    return None


@step
def total(xs: list) -> int:
    return sum(x for x in xs)


@pipeline
def forgot(n: int = 3):
    return total(load(n))


@pipeline
def optional(n: int = 3):
    return total(maybe(n))
