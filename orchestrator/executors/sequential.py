"""The default executor: one attempt at a time, in the driver's own process.

A step with a ``timeout`` runs in a child process instead, because only a
process can really be stopped when its time is up.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

from orchestrator.executors.child import run_in_child

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec


class SequentialExecutor:
    """Runs each attempt to completion inside ``submit``."""

    name = "sequential"
    capacity = 1

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        from orchestrator.task import run_task

        future: Future[TaskResult] = Future()
        if spec.timeout is not None:
            future.set_result(run_in_child(spec, spec.timeout))
        else:
            future.set_result(run_task(spec))
        return future

    def shutdown(self, cancel: bool = False) -> None:
        return None
