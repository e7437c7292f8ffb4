"""Independent branches for the executors: timestamps, worker death, shared results."""

import os
import time
from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


@step
def branch(i: int, seconds: float) -> dict:
    record(f"branch{i}")
    started = time.time()
    time.sleep(seconds)
    return {"i": i, "started": started, "ended": time.time(), "pid": os.getpid()}


@step
def gather(results: list) -> list:
    record("gather")
    return sorted(r["i"] for r in results)


@pipeline
def parallel(n: int = 4, seconds: float = 0.5):
    return gather([branch(i, seconds) for i in range(n)])


@step(retries=2)
def dies_once(x: int) -> int:
    marker = Path(os.environ["ORCH_TEST_LOG"] + ".died")
    record("dies_once")
    if not marker.exists():
        marker.write_text("1")
        os._exit(9)  # the worker process dies mid-step
    return x * 2


@pipeline
def dying(x: int = 21):
    return dies_once(x)


@step
def kills_its_worker(seconds: float) -> int:
    record("kills_its_worker")
    time.sleep(seconds)  # long enough for the next step to be queued behind it on the same worker
    os._exit(9)


@pipeline
def neighbours(n: int = 3, seconds: float = 0.5):
    """A step that kills its worker, called first, beside healthy steps that have no retries."""
    return [kills_its_worker(seconds)] + [branch(i, 0.0) for i in range(n)]


@step
def square(x: int) -> int:
    record(f"square{x}")
    return x * x


@step
def frame(n: int):
    import pandas as pd

    return pd.DataFrame({"a": range(n), "b": [f"v{i}" for i in range(n)]})


@step
def combine(squares: list, table) -> dict:
    return {"sum": sum(squares), "rows": len(table)}


@pipeline
def mixed(items: list = [1, 2, 3], n: int = 2000):  # noqa: B006
    return combine(square.map(items), frame(n))


@step(retries=1, retry_delay=0)
def dies_once_after(results: list) -> int:
    """Kills its worker once, after the steps before it finished on that worker, and holds their results."""
    marker = Path(os.environ["ORCH_TEST_LOG"] + ".died")
    record("dies_once_after")
    if not marker.exists():
        marker.write_text("1")
        os._exit(9)
    time.sleep(1.0)  # time enough for anything Dask would run again on the new worker
    return len(results)


@pipeline
def finished_then_killed(n: int = 3):
    return dies_once_after([branch(i, 0.0) for i in range(n)])


@step
def finishes_unreported(i: int) -> int:
    """Finishes, but its Dask worker tells the scheduler nothing more: it dies before it could say so.

    The worker's messages to the scheduler are dropped from here on, as they are when the
    next step on it kills it within milliseconds (before the worker's batched report went).
    """
    from distributed import get_worker

    record(f"finishes_unreported{i}")
    get_worker().batched_send = lambda msg: None
    return i


@step
def kills_it_at_once() -> int:
    record("kills_it_at_once")
    os._exit(3)


@pipeline
def finished_unreported():
    """On one Dask worker: a step finishes, then the next one kills the worker before the first was reported."""
    return [finishes_unreported(1), kills_it_at_once()]
