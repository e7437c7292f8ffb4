"""A large artifact followed by a slow step: for killing a run in the middle."""

import time

from recorder import record

from orchestrator import pipeline, step


@step
def produce(n: int) -> bytes:
    record("produce")
    return b"x" * n


@step
def wait(data: bytes, seconds: float) -> int:
    record("wait")
    time.sleep(seconds)
    return len(data)


@pipeline
def slow(n: int = 20_000_000, seconds: float = 60.0):
    return wait(produce(n), seconds)
