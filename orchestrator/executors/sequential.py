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
    """Runs each attempt to completion inside ``submit`` (or ``run``)."""

    name = "sequential"
    capacity = 1

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        future: Future[TaskResult] = Future()
        future.set_result(self.run(spec))
        return future

    def run(self, spec: TaskSpec) -> TaskResult:
        """Run one attempt now and return its result (the run loop's shortcut past a future)."""
        from orchestrator.task import run_task

        if spec.timeout is not None:
            return run_in_child(spec, spec.timeout)
        return run_task(spec)

    def shutdown(self, cancel: bool = False) -> None:
        return None

    def unstarted(self) -> set[tuple[str, int]]:
        return set()  # an attempt runs as it is submitted

    def stopped(self) -> dict[tuple[str, int], TaskResult]:
        return {}  # the interrupted attempt comes with its KeyboardInterrupt
