"""A step whose worker dies once: in the middle of the step, or while its second output is being stored."""

import os
from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


def _first_attempt(name: str) -> bool:
    marker = Path(os.environ["ORCH_TEST_LOG"] + f".{name}")
    first = not marker.exists()
    marker.write_text("1")
    return first


class ExitWhenPickled:
    """Hashing or storing this kills the process: the worker dies after the first output is stored."""

    def __reduce__(self):
        os._exit(9)


@step(retries=1, retry_delay=0.01)
def exits(n: int) -> bytes:
    record("exits")
    if _first_attempt("exits"):
        os._exit(9)
    return b"second-attempt" * n


@step(retries=1, retry_delay=0.01, outputs=("first", "second"))
def exits_storing(n: int):
    record("exits_storing")
    if _first_attempt("exits_storing"):
        return b"attempt-one" * n, ExitWhenPickled()
    return b"attempt-two" * n, n


@pipeline
def mid_step(n: int = 100_000):
    return exits(n)


@pipeline
def mid_store(n: int = 100_000):
    return exits_storing(n)
