"""A pipeline whose step returns a value stored pickled (a set of tuples), as a model is: it is signed."""

from orchestrator import pipeline, step


@step
def make(n: int) -> object:
    return {(i, str(i)) for i in range(n)}  # a set of tuples: no JSON or Arrow format, so pickled


@step
def size(items: object) -> int:
    return len(items)  # type: ignore[arg-type]


@pipeline
def pickled(n: int = 2000):
    return size(make(n))
