"""A step that uses a module-level value no one can hash, and one guarded by a lock."""

from __future__ import annotations

import threading

PENDING = (name for name in ["a", "b"])  # a generator: its items are consumed, it cannot be pickled
REGISTRY_LOCK = threading.Lock()
READY = threading.Event()


def guarded(value: int) -> int:
    return value + len(next(PENDING))


def not_using_the_generator(value: int) -> int:
    return value + 1


def with_lock(value: int) -> int:
    with REGISTRY_LOCK:
        READY.set()
        return value + 1
