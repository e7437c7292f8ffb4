"""What a run hands back to Python: ``Run`` with one ``StepResult`` per node.

Plain records built by the runner; ``Run.output()`` and ``Run.metrics``
read the store lazily, so a ``Run`` stays cheap to keep around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.context import Context
from orchestrator.dag import substitute
from orchestrator.errors import UserError


@dataclass
class StepResult:
    """How one node fared in a run."""

    name: str
    status: str
    reason: str = ""
    attempts: int = 0
    duration: float | None = None
    error: str | None = None
    key: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # What a REPL user looks for; the key and output digests are one attribute away.
        shown = [self.status]
        if self.attempts:
            shown.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        if self.duration is not None and self.status != "cached":
            shown.append(_seconds(self.duration))
        why = self.error or (self.reason if self.reason != self.status else "")
        return f"<result of step {self.name!r}: {', '.join(shown)}{f' ({why})' if why else ''}>"


@dataclass
class Run:
    """The outcome of ``Pipeline.run``: status, per-step results, and the outputs."""

    id: str
    pipeline: str
    status: str
    steps: dict[str, StepResult]
    store: str
    result: Any = None
    error: str | None = None
    metadata: str | None = None
    # A map's node -> (its item nodes, its step's output names): a map is no step of its own.
    maps: dict[str, tuple[list[str], tuple[str, ...]]] = field(default_factory=dict)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for result in self.steps.values():
            counts[result.status] = counts.get(result.status, 0) + 1
        steps = ", ".join(f"{n} {status}" for status, n in counts.items())
        error = f": {self.error}" if self.error else ""
        return f"<run {self.id} of pipeline {self.pipeline!r}: {self.status} ({steps}){error}; store {self.store}>"

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics the run's steps returned (see ``orchestrator.Metrics``)."""
        return Context.open(self.store, self.metadata).lineage.run(self.id)["metrics"] or {}

    def output(self) -> Any:
        """The pipeline's return value, loaded from the store (a tuple for a tuple)."""
        if self.status != "succeeded":
            raise UserError(f"run {self.id} {self.status}; it has no output. See `orch show {self.id}`.")
        ctx = Context.open(self.store, self.metadata)

        def load(node: str, name: str) -> Any:
            if node in self.maps:  # the list of its items' outputs (tuples for a multi-output step)
                items, names = self.maps[node]
                if len(names) == 1:
                    return [load(item, names[0]) for item in items]
                return [tuple(load(item, n) for n in names) for item in items]
            return ctx.load(self.steps[node].outputs[name])

        return substitute(self.result, lambda out: load(out.node, out.name))

    @property
    def failed_steps(self) -> list[StepResult]:
        return [s for s in self.steps.values() if s.status == "failed"]


def _seconds(duration: float) -> str:
    """``0.25 ms``, ``1.2 s``: a duration as a person reads it, not 17 digits."""
    return f"{duration * 1000:.3g} ms" if duration < 1 else f"{duration:.3g} s"
