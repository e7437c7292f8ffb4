"""Steps with a timeout, which run in a child process: one quick, one that hangs, one that waits."""

import os
import time
from pathlib import Path

from orchestrator import pipeline, step


@step(timeout=30)
def quick() -> int:
    return 1


@step(timeout=0.5)
def hangs() -> int:
    print("sleeping past the timeout", flush=True)
    time.sleep(60)
    return 2


@step(timeout=60)
def waits() -> int:
    print("waiting for the lock", flush=True)
    Path(os.environ["ORCH_TEST_LOG"] + ".pid").write_text(str(os.getpid()))
    time.sleep(60)
    return 3


@pipeline
def timed():
    return [quick(), hangs()]


@pipeline
def waiting():
    return waits()


@step(timeout=0.5)
def naps(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pipeline
def mapped_naps():
    return naps.map([0, 60])  # naps_2 runs out of time
