"""A step called with and without its own default, and a helper with a default of its own."""

from recorder import record

from orchestrator import pipeline, step


def shift(x, by=1):
    return x + by


@step
def scale(x: int, k=5):
    record(f"scale:{k}")
    return shift(x * k)


@pipeline
def own_default(n: int = 4):
    return scale(n), scale(n, k=2)
