"""A map over a list the body holds: its items' keys are known before the run (`orch plan --json`)."""

from orchestrator import pipeline, step


@step
def square(x: int) -> int:
    return x * x


@step
def total(values: list) -> int:
    return sum(values)


@pipeline
def held_map(n: int = 5):
    return total(square.map(list(range(n))))
