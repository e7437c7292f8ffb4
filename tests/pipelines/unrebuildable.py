"""A parameter whose class cannot be rebuilt in another process: its ``__setstate__`` raises there."""

import os

from orchestrator import pipeline, step

DRIVER = os.getpid()


class Unrebuildable:
    refusal: type[BaseException] = RuntimeError

    def __init__(self, v: int) -> None:
        self.v = v

    def __setstate__(self, state: dict) -> None:
        if os.getpid() != DRIVER:
            raise self.refusal("cannot rebuild Unrebuildable here")
        self.__dict__.update(state)


@step
def use(b: Unrebuildable) -> int:
    return b.v


class Exits(Unrebuildable):
    refusal = SystemExit  # ended a Dask worker, which Dask replaced and sent the task to again, for ever


@pipeline
def unrebuildable(exits: bool = False):
    return use(Exits(3) if exits else Unrebuildable(3))
