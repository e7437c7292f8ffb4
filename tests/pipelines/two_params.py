"""Two steps, each with a parameter of its own (see tests/test_code_changes.py)."""

from orchestrator import pipeline, step


@step
def first(x: int) -> int:
    return x + 1


@step
def second(v: int, y: int) -> int:
    return v * y


@pipeline
def two_params(x: int = 1, y: int = 1):
    return second(first(x), y=y)
