"""A ~200 MB artifact between two small steps: for killing a run while it is written."""

from recorder import record

from orchestrator import pipeline, step


@step
def setup(seed: int) -> int:
    record("setup")
    return seed


@step
def big(n: int, seed: int) -> bytes:
    record("big")
    return bytes([seed % 251]) * n


@step
def size(data: bytes) -> int:
    record("size")
    return len(data)


@pipeline
def big_pipeline(n: int = 200_000_000, seed: int = 0):
    return size(big(n, setup(seed)))
