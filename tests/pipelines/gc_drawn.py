"""A step whose output differs at each run of it (random draws): a --rerun replaces its cache entry."""

import random

from orchestrator import pipeline, step


@step
def draw(n: int) -> list:
    return [random.random() for _ in range(n)]  # too large to stay inline: an object file per draw


@pipeline
def gc_drawn(n: int = 2000):
    return draw(n)
