"""A run that stays in its middle step until the file named by HELD_RELEASE exists.

A second terminal's command can then look at the run while it is under way, at a
known point, without guessing how long a step takes.
"""

import os
import time
from pathlib import Path

from orchestrator import pipeline, step


@step
def first(n: int) -> int:
    return n + 1


@step
def held(x: int) -> int:
    release = Path(os.environ["HELD_RELEASE"])
    while not release.exists():
        time.sleep(0.01)
    return x * 2


@step
def last(x: int) -> int:
    return x + 3


@pipeline
def held_run(n: int = 1):
    return last(held(first(n)))
