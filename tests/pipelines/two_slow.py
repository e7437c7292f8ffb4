"""Two slow independent steps: two runs started together each compute one (see tests/test_runner.py)."""

import time

from orchestrator import pipeline, step


@step
def slow(i: int, tag: str) -> int:
    time.sleep(0.5)
    return i


@step
def add(a: int, b: int) -> int:
    return a + b


@pipeline
def two_slow(tag: str = "x"):
    return add(slow(1, tag), slow(2, tag))
