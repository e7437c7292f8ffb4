"""Three file-backed steps in a chain; the last takes a parameter so it can re-run alone."""

from recorder import record

from orchestrator import pipeline, step


@step
def first(n: int) -> bytes:
    record("first")
    return b"a" * n


@step
def second(data: bytes) -> bytes:
    record("second")
    return data + b"b" * len(data)


@step
def third(data: bytes, k: int) -> int:
    record("third")
    return len(data) + k


@pipeline
def orphans(n: int = 1_000_000, k: int = 0):
    return third(second(first(n)), k)
