"""Steps that use what cannot be pickled: a module-level lock, and a function closing over a connection."""

import sqlite3
import threading

from orchestrator import pipeline, step

LOCK = threading.Lock()
READY = threading.Event()  # a Condition around a lock, inside
_SEEN: list[int] = []


@step
def guarded(i: int) -> int:
    with LOCK:  # orders work in one process; a worker makes its own, as importing this module would
        _SEEN.append(i)
        READY.set()
        return i * 2


@step
def total(xs: list) -> int:
    return sum(xs)


@pipeline
def locked(n: int = 4):
    return total(guarded.map(list(range(n))))


def make_scorer():
    conn = sqlite3.connect(":memory:")

    def score(x):
        return conn.execute("select ?", (x,)).fetchone()[0]

    return score


@step(retries=2)
def apply(i: int, fn) -> int:
    return fn(i)


@step
def plain(i: int) -> int:
    return i + 1


@pipeline
def connected(n: int = 3):
    return total(apply.map(list(range(n)), fn=make_scorer())), plain(n)


CONN = sqlite3.connect(":memory:")


@step
def lookup(i: int) -> int:
    return CONN.execute("select ?", (i,)).fetchone()[0]


@pipeline
def looked_up(n: int = 6):
    return total(lookup.map(list(range(n))))
