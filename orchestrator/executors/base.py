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
