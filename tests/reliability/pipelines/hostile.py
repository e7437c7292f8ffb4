"""A pickled artifact (a set) read by a step that can re-run alone (k)."""

from recorder import record

from orchestrator import pipeline, step


@step
def make(n: int) -> set:
    record("make")
    return set(range(n))


@step
def small() -> set:
    record("small")
    return {1, 2, 3}


@step
def use(o: set, s: set, k: int) -> int:
    record("use")
    return len(o) + len(s) + k


@pipeline
def hostile(n: int = 2000, k: int = 0):
    return use(make(n), small(), k)
