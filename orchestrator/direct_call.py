"""A pipeline function called as a plain function (``training()``): its steps' outputs as a run gives them.

Calling the pipeline function runs its body as plain Python, each step as its
plain function, without caching. A run hands the body one placeholder per
output of a step of several outputs, in declared order and by name
(``train, test = split(raw)``, ``split(raw).train``), while the plain function
returns what it returns: a dict of its outputs (Kedro's way) unpacked into its
*keys*, so that the body went on with the strings ``"train"`` and ``"test"``
without a word, and ``split(raw).train`` was an AttributeError of a body that
runs; an ``async def`` step's call handed the next step a coroutine. Here the
body's own step calls hand back the outputs as a run would, awaited.

Only calls made by the body itself: a step's function that calls another step
gets that step's plain return value, as it does in a run. Nothing here is on
a run's path; ``Step.__call__`` reads one flag outside pipelines.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from orchestrator.coroutines import run_to_end
from orchestrator.errors import did_you_mean
from orchestrator.tracing import ByName

#: True while a pipeline function's body runs as a plain function (``Pipeline.__call__``).
DIRECT_BODY: contextvars.ContextVar[bool] = contextvars.ContextVar("orchestrator_direct_body", default=False)


@contextmanager
def _body_calls(direct: bool) -> Iterator[None]:
    token = DIRECT_BODY.set(direct)
    try:
        yield
    finally:
        DIRECT_BODY.reset(token)


def direct_body() -> AbstractContextManager[None]:
    """Run a pipeline body as a plain function: its step calls give outputs as a run does."""
    return _body_calls(True)


def plain_calls() -> AbstractContextManager[None]:
    """Step calls are plain calls again (a run started from a body called directly: its steps' code)."""
    return _body_calls(False)


def call_from_body(fn: Callable[..., Any], name: str, output_names: Sequence[str], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
    """Call step ``name``'s function for a body run as a plain function; several outputs as ``OutputValues``.

    Raises:
        TypeError: a step of several outputs returned neither a sequence of
            one value per output nor a dict with exactly their names, which a
            run refuses too.
    """
    with plain_calls():  # the step's own calls of other steps are plain calls, as in a run
        value = fn(*args, **kwargs)
        if inspect.iscoroutine(value):  # an ``async def`` step: in a body, its call stands for what it awaits to
            value = run_to_end(value)
    if len(output_names) == 1:
        return value
    if isinstance(value, dict) and set(value) == set(output_names):
        return OutputValues([value[n] for n in output_names], tuple(output_names))
    if isinstance(value, (tuple, list)) and len(value) == len(output_names):
        return OutputValues(value, tuple(output_names))
    got = (f"a dict with keys {', '.join(map(str, value))}" if isinstance(value, dict)
           else f"a {type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list))
           else f"a value of type {type(value).__name__}")
    raise TypeError(f"step '{name}' declares {len(output_names)} outputs ({', '.join(output_names)}) but "
                    f"returned {got}, which a run refuses too. Return a tuple with one value per output, "
                    "in that order, or a dict with exactly those keys.")


class OutputValues(ByName):
    """The outputs of one call of a step of several outputs, in order and by name (``.train``, ``["train"]``).

    What ``tracing.Outputs`` is to a run, with the values themselves; copied
    or pickled it is a plain tuple.
    """

    _names: tuple[str, ...]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...]) -> OutputValues:
        made = super().__new__(cls, values)
        made._names = names
        return made

    def __getattribute__(self, name: str) -> Any:
        if name in ("index", "count") and name in tuple.__getattribute__(self, "_names"):
            return self._named(name, AttributeError)  # an output so named wins over tuple's method
        return tuple.__getattribute__(self, name)

    def _named(self, name: str, error: type[Exception]) -> Any:
        names = self._names
        if name in names:
            return tuple.__getitem__(self, names.index(name))
        raise error(f"no output '{name}': the outputs are {', '.join(names)}.{did_you_mean(name, names)}")
