"""The executor interface: submit a task, get a future; shut down."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.task import TaskResult, TaskSpec


class Executor(Protocol):
    """Runs task attempts. ``capacity`` is how many it runs at once."""

    name: str
    capacity: int

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        """Start one attempt; the future resolves to its ``TaskResult``."""
        ...

    def shutdown(self, cancel: bool = False) -> None:
        """Release workers; with ``cancel``, stop running attempts now."""
        ...

    def unstarted(self) -> set[tuple[str, int]]:
        """After ``shutdown(cancel=True)``: (node, attempt) of the attempts submitted that never began.

        Only an executor that queues attempts beyond its workers has any (the
        Dask LocalCluster); they are no attempt of their step.
        """
        ...

    def stopped(self) -> dict[tuple[str, int], TaskResult]:
        """After ``shutdown(cancel=True)``: the attempts it stopped with what they had printed and logged.

        Only attempts that wrote their output to a spill folder on this machine as
        they went (a timed attempt on the process pool or the LocalCluster) have
        it; the others' output died with their worker. The sequential executor's
        interrupted attempt reaches the run loop with its ``KeyboardInterrupt``.
        """
        ...
