"""Failed attempts that must publish nothing: a bad second output, a plain failure, a killed worker."""

import os
import signal
from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


def _attempt(name: str) -> int:
    marker = Path(os.environ["ORCH_TEST_LOG"] + f".{name}")
    n = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(n + 1))
    return n + 1


@step(retries=1, retry_delay=0.01, outputs=("first", "second"))
def two_outputs(n: int):
    record("two_outputs")
    if _attempt("two_outputs") == 1:
        # The first output is stored; the second cannot be, so the attempt fails.
        return b"attempt-one" * n, (i for i in range(3))
    return b"attempt-two" * n, b"second" * n


@step(retries=0)
def once() -> int:
    record("once")
    raise ValueError("fails every time")


@step(retries=1, retry_delay=0.01, timeout=60)
def dies(n: int) -> bytes:
    record("dies")
    if _attempt("dies") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return b"survivor" * n


@pipeline
def outputs(n: int = 1000):
    return two_outputs(n)


@pipeline
def no_retry():
    return once()


@pipeline
def killed_worker(n: int = 1000):
    return dies(n)
