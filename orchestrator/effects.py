"""Effects: step outputs that the driver acts on after the step, such as run metrics.

A step runs wherever the executor puts it and may not write the metadata
database. When it returns a value of an effect type (``Metrics``, or a type
registered with ``register_effect``), the run's driver, the one process that
records lineage, calls the effect's handler with that value after the step
has finished, whether it ran or was cached. Handlers must be idempotent: a
cached step re-applies its effect on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.store import qualified_type_name

if TYPE_CHECKING:
    from orchestrator.context import Context


class Metrics(dict):  # type: ignore[type-arg]
    """A dict of numbers that a step returns to have them recorded on the run.

    ``orch runs`` and ``orch show`` display them; ``run.metrics`` holds them::

        @step
        def evaluate(model, test) -> Metrics:
            return Metrics(accuracy=0.93, f1=0.91)
    """


@dataclass(frozen=True)
class EffectContext:
    """Where an effect applies: the store, the run and the node that produced the value."""

    context: Context
    run_id: str
    pipeline: str
    node: str
    digest: str
    # One dict per run, shared by its effects, for what they must know of each other (which node
    # reported a metric name); the run loop owns it, so it ends with the run.
    run_state: dict[str, Any] = field(default_factory=dict, compare=False)


Handler = Callable[[EffectContext, Any], None]
_HANDLERS: dict[str, Handler] = {}
_QUEUES_ONLY: set[str] = set()  # type names whose handler needs no commit before it (see register_effect)


def register_effect(cls: type, handler: Handler, *, records_first: bool = True) -> None:
    """Call ``handler(effect_context, value)`` in the driver for every output of type ``cls``.

    ``records_first``: commit the step's records before the handler runs, for
    a handler that writes in a transaction of its own rows that refer to them.
    One that only queues its writes with them (``Lineage.queue_run_metrics``)
    passes False: a commit per item of a long map would cost more than the map.
    """
    if not records_first:
        _QUEUES_ONLY.update({f"{cls.__module__}.{cls.__qualname__}",
                             f"{cls.__module__.partition('.')[0]}.{cls.__qualname__}", qualified_type_name(cls)})
    # The store names a type by its short form ("pkg.Class") when the package exports it, which
    # may only be true once the package has finished importing: register both forms.
    _HANDLERS[f"{cls.__module__}.{cls.__qualname__}"] = handler
    _HANDLERS[f"{cls.__module__.partition('.')[0]}.{cls.__qualname__}"] = handler
    _HANDLERS[qualified_type_name(cls)] = handler


def handler_for(type_name: str) -> Handler | None:
    return _HANDLERS.get(type_name) if _HANDLERS else None


def records_first(type_name: str) -> bool:
    """Whether the step's records must be committed before the handler of ``type_name`` runs."""
    return type_name not in _QUEUES_ONLY


def _record_metrics(where: EffectContext, value: Metrics) -> None:
    numbers: dict[str, int | float | str] = {}
    for key, number in value.items():
        if isinstance(number, bool):
            numbers[str(key)] = str(number)
            continue
        try:
            # A whole number stays one (depth=2, not 2.0); numpy scalars become Python numbers.
            numbers[str(key)] = int(number) if _is_integral(number) else float(number)
        except (TypeError, ValueError, OverflowError):
            numbers[str(key)] = str(number)
    owners = where.run_state.setdefault("metric_owners", {})
    recorded, dropped = _name_by_node(owners, where.node, numbers)
    # With the step records' next commit: a map whose every item reports metrics writes them a few
    # times, not once per item.
    where.context.lineage.queue_run_metrics(where.run_id, recorded, drop=dropped)


def _name_by_node(owners: dict[str, tuple[str, int | float | str] | None], node: str,
                  numbers: dict[str, int | float | str]) -> tuple[dict[str, int | float | str], list[str]]:
    """Metric names as recorded: a name that several nodes report becomes ``node.name`` for each.

    Without this the node that happened to finish last would win (``evaluate`` called for two
    models, on the process pool): the run would show one model's accuracy, not always the same.
    ``owners`` is the run's: each name's node and value so far, None once two nodes reported it.
    Returns the metrics to record and the plain names to remove.
    """
    recorded: dict[str, int | float | str] = {}
    dropped: list[str] = []
    for name, number in numbers.items():
        if name not in owners or (owners[name] or ("",))[0] == node:
            owners[name] = (node, number)
            recorded[name] = number
            continue
        first = owners[name]
        if first is not None:  # a second node reports it: the first one's goes under its name too
            dropped.append(name)
            recorded[f"{first[0]}.{name}"] = first[1]
            owners[name] = None
        recorded[f"{node}.{name}"] = number
    return recorded, dropped


def _is_integral(number: object) -> bool:
    """True for ints and integer numpy scalars, not for floats that happen to be whole."""
    return isinstance(number, int) or type(number).__name__.startswith(("int", "uint"))


register_effect(Metrics, _record_metrics, records_first=False)
