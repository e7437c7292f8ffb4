"""Executors: run a prepared task inline, in a process pool, or on Dask.

An executor receives a picklable callable and its argument and returns a
``concurrent.futures.Future``. It knows nothing of DAGs, stores or lineage:
the runner schedules, records and retries; the executor only runs.
"""

from __future__ import annotations

from orchestrator.errors import UserError
from orchestrator.executors.base import Executor

EXECUTORS = ("sequential",)


def make_executor(name: str, workers: int | None = None) -> Executor:
    """The executor called ``name``.

    Raises:
        UserError: for an unknown name.
    """
    if name == "sequential":
        from orchestrator.executors.sequential import SequentialExecutor

        return SequentialExecutor()
    raise UserError(f"unknown executor '{name}'. Choose one of: {', '.join(EXECUTORS)}.")


__all__ = ["EXECUTORS", "Executor", "make_executor"]
