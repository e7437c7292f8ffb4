"""Retry behaviour: a step that fails a set number of times, one with a filter, one that hangs."""

import logging
import os
import time
from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


def _failures_so_far(name: str) -> int:
    marker = Path(os.environ["ORCH_TEST_LOG"] + f".{name}")
    n = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(n + 1))
    return n


@step(retries=3, retry_delay=0.01, backoff=2.0)
def flaky(fail_times: int) -> str:
    record("flaky")
    if _failures_so_far("flaky") < fail_times:
        raise ConnectionError("temporary network problem")
    return "ok"


@step(retries=3, retry_delay=0.01, retry_on=(ConnectionError,))
def wrong_kind() -> str:
    record("wrong_kind")
    raise KeyError("not retried: KeyError is not a ConnectionError")


@step(timeout=0.5, retries=1)
def hangs(seconds: float) -> str:
    record("hangs")
    print("waiting for the slow service", flush=True)
    logging.getLogger("flaky").warning("still waiting")
    time.sleep(seconds)
    return "done"


@pipeline
def flaky_pipeline(fail_times: int = 2):
    return flaky(fail_times)


@pipeline
def filtered():
    return wrong_kind()


@pipeline
def timeouts(seconds: float = 30.0):
    return hangs(seconds)
