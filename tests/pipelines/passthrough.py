"""A step that hands its input on unchanged: two steps output the same artifact."""

from orchestrator import pipeline, step


@step
def load(n: int) -> list:
    return list(range(n))


@step
def a_check(xs: list) -> list:  # named to sort before `load`: order must come from the DAG, not names
    assert all(x >= 0 for x in xs)
    return xs


@step
def total(xs: list) -> int:
    return sum(xs)


@pipeline
def passthrough(n: int = 5):
    return total(a_check(load(n)))
