"""A second pipeline beside gc_runs.py, each run with an artifact of its own, run less often."""

from orchestrator import pipeline, step


@step
def build(n: int) -> list:
    return [-n] * 5000  # too large to stay inline: an object file per run


@pipeline
def gc_other(n: int = 1):
    return build(n)
