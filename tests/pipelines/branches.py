"""Two independent branches; one fails unless $ORCH_TEST_FIX is set."""

import os

from recorder import record

from orchestrator import pipeline, step


@step
def source(n: int) -> int:
    record("source")
    return n


@step
def good(x: int) -> int:
    record("good")
    return x + 1


@step
def good_after(x: int) -> int:
    record("good_after")
    return x * 2


@step
def bad(x: int) -> int:
    record("bad")
    if not os.environ.get("ORCH_TEST_FIX"):
        raise ValueError("bad input: x is odd")
    return x


@step
def after_bad(x: int) -> int:
    record("after_bad")
    return x + 100


@pipeline
def branches(n: int = 3):
    s = source(n)
    return good_after(good(s)), after_bad(bad(s))
