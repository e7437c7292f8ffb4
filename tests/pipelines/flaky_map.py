"""A map whose first item fails once: its retry should not wait for the other items."""

import os
from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


@step(retries=1)
def item_fails_once(x: int) -> int:
    record(f"item:{x}")
    marker = Path(os.environ["ORCH_TEST_LOG"] + ".failed")
    if x == 0 and not marker.exists():
        marker.write_text("once")
        raise ConnectionError("temporary network problem")
    return x


@pipeline
def flaky_map(n: int = 20):
    return item_fails_once.map(list(range(n)))
