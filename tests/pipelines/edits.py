"""One step per kind of dependency, to prove that an edit re-runs exactly its dependents."""

from statistics import mean as summarize

import other_helpers
from other_helpers import triple
from recorder import record

from orchestrator import pipeline, step

THRESHOLD = 3


def same_module_helper(x):
    return x + 1


class Scaler:
    def apply(self, x):
        return x * 2


def make_closure_step():
    factor = 10

    @step(name="uses_closure")
    def uses_closure(x):
        record("uses_closure")
        return x * factor

    return uses_closure


uses_closure = make_closure_step()


@step
def base(n: int) -> int:
    record("base")
    return n


@step
def uses_helper(x):
    record("uses_helper")
    return same_module_helper(x)


@step
def uses_other(x):
    record("uses_other")
    return other_helpers.triple(x)


@step
def uses_imported(x):
    record("uses_imported")
    return triple(x) + 1


@step
def uses_class(x):
    record("uses_class")
    return Scaler().apply(x)


@step
def uses_const(x):
    record("uses_const")
    return x > THRESHOLD


@step
def uses_default(x, k=5):
    record("uses_default")
    return x + k


@step
def uses_library(x):
    record("uses_library")
    return summarize([x, 1, 1])


@step(retries=0)
def plain(x):
    record("plain")
    return x - 1


@pipeline
def edits(n: int = 4):
    b = base(n)
    return (uses_helper(b), uses_other(b), uses_imported(b), uses_class(b), uses_const(b),
            uses_closure(b), uses_default(b), uses_library(b), plain(b))
