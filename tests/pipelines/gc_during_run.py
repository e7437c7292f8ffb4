"""A run that collects garbage on its own store while it is under way, after a cache hit."""

import os

from orchestrator import pipeline, step


@step
def make(n: int) -> list:
    return [n] * 5000  # too large to stay inline: an object file


@step
def collect(round: int) -> int:
    # `orch cache gc --keep-last 0` from another process, in effect: its own connection to the store.
    if round:
        from orchestrator.context import Context
        from orchestrator.maintenance import collect_garbage

        collect_garbage(Context.open(os.environ["GC_DURING_RUN_STORE"]), keep_last=0)
    return round


@pipeline
def gc_during_run(n: int = 1, round: int = 0):
    return make(n), collect(round)
