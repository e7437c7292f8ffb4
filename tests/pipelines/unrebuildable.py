"""A parameter whose class cannot be rebuilt in another process: its ``__setstate__`` raises."""

from orchestrator import pipeline, step


class Unrebuildable:
    def __init__(self, v: int) -> None:
        self.v = v

    def __setstate__(self, state: dict) -> None:
        raise RuntimeError("cannot rebuild Unrebuildable here")


@step
def use(b: Unrebuildable) -> int:
    return b.v


@pipeline
def unrebuildable():
    return use(Unrebuildable(3))
