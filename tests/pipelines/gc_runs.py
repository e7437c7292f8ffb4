"""Runs that succeed or fail on demand, each with an artifact of its own, for garbage collection."""

from orchestrator import pipeline, step


@step
def make(n: int) -> list:
    return [n] * 5000  # too large to stay inline: an object file per run


@step
def check(xs: list, fail: bool) -> int:
    if fail:
        raise ValueError("asked to fail")
    return len(xs)


@pipeline
def gc_runs(n: int = 1, fail: bool = False):
    return check(make(n), fail)
