"""A step that uses a module-level value no one can hash."""

from __future__ import annotations

import threading

REGISTRY_LOCK = threading.Lock()


def guarded(value: int) -> int:
    with REGISTRY_LOCK:
        return value + 1


def not_using_the_lock(value: int) -> int:
    return value + 1
