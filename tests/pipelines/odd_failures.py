"""Steps that fail in ways that are awkward to carry between processes."""

import sys
import threading

from orchestrator import pipeline, step


class DataError(Exception):
    """Pickles, but does not unpickle: its __init__ needs two arguments, args holds one."""

    def __init__(self, column: str, count: int) -> None:
        super().__init__(f"{count} bad values in column {column}")


class LockedError(Exception):
    """Does not pickle at all: it holds a lock."""

    def __init__(self) -> None:
        super().__init__("the resource is locked")
        self.lock = threading.Lock()


class Cancelled(BaseException):
    """A library's own cancellation: a BaseException, like asyncio's CancelledError or GeneratorExit."""


@step
def check(kind: str) -> int:
    if kind == "custom":
        raise DataError("age", 3)
    if kind == "locked":
        raise LockedError()
    if kind == "exit":
        sys.exit(3)
    if kind == "cancelled":
        raise Cancelled("the job was cancelled")
    if kind == "interrupt":  # the step's own, not Ctrl-C
        raise KeyboardInterrupt("stopped by the step")
    return 1


@step(timeout=60)
def check_in_child(kind: str) -> int:
    return check(kind)


@step
def after(x: int) -> int:
    return x + 1


@pipeline
def odd(kind: str = "custom"):
    return after(check(kind))


@pipeline
def odd_in_child(kind: str = "custom"):
    return after(check_in_child(kind))
