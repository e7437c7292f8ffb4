"""A step that holds the interpreter (a long call into C that keeps the GIL): its worker answers nobody meanwhile."""

from recorder import record

from orchestrator import pipeline, step


@step
def crunch() -> int:
    print("crunching", flush=True)
    record("crunch")
    return sum(range(10**13))  # C all along: minutes, in which no other thread of the worker runs


@pipeline
def held_interpreter():
    return crunch()
