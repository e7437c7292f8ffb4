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
