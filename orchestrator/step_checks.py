"""Mistakes made decorating a step, naming its options or calling it: one line each, with the fix.

``@step`` on something that is not a Python function, a generator function, a
decorator of the user's written above ``@step``, an option spelled as another
orchestrator spells it, a name given by position, ``.map()`` over a dict or a
set, a placeholder passed to a step outside the body that made it, and a step
written with Dagster's ``context`` first and called without it. Each
message names the user's ``file:line`` (``sites``).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from orchestrator.errors import PipelineDefinitionError, did_you_mean
from orchestrator.sites import call_site, definition_site, user_site
from orchestrator.tracing import Output, Outputs

if TYPE_CHECKING:
    from orchestrator.step import Step


def not_a_function(obj: Any) -> str:
    """Why ``@step`` refuses ``obj``, and what to decorate instead.

    A step's cache key is built from its Python code (``fingerprint``), so a
    step must be a function, or a bound method or ``functools.partial`` of
    one. A class, a callable instance or a builtin has no such code.
    """
    where = call_site()
    if isinstance(obj, (staticmethod, classmethod)):
        kind = type(obj).__name__
        return (f"@step cannot decorate a {kind} object ({where}): it needs the plain function. "
                f"Write @{kind} above @step.")
    if isinstance(obj, type):
        return (f"@step cannot decorate class '{obj.__qualname__}' ({where}): a step must be a function. "
                f"Decorate a function that builds it and returns the result, e.g. "
                f"`@step def make_{obj.__name__.lower()}(...): return {obj.__name__}(...)`.")
    if not callable(obj):
        return f"@step needs a function, got {obj!r} ({where}). Decorate a function defined with def."
    if isinstance(obj, functools._lru_cache_wrapper):
        # A memo in the process, under a cache of results keyed by code, parameters and inputs.
        return (f"@step cannot decorate '{obj.__qualname__}', a functools.lru_cache (or cache) wrapper ({where}): "
                "a step's results are cached already. Drop @lru_cache under @step, or put it on a helper "
                "the step calls.")
    named = getattr(obj, "__qualname__", None)
    shown = f"'{named}', a {type(obj).__name__}" if isinstance(named, str) else f"a {type(obj).__name__} object"
    return (f"@step cannot decorate {shown} ({where}): a step must be a function defined in Python. "
            "Decorate a function that calls it.")


def wraps_step(wrapper: types.FunctionType, step: Step) -> bool:
    """Whether ``wrapper`` is a decorator's function around ``step``.

    Named so by ``functools.wraps`` (its ``__wrapped__``), or, without it,
    holding the step in its closure (``def inner(*a): return fn(*a)``).
    """
    if getattr(wrapper, "__wrapped__", None) is step:
        return True
    for cell in wrapper.__closure__ or ():
        try:
            if cell.cell_contents is step:
                return True
        except ValueError:  # a cell not yet filled
            continue
    return False


def decorated_above(step: Step, wrapper: types.FunctionType) -> str:
    """Why a decorator of the user's above ``@step`` is a mistake, and the fix.

    ``@timed @step def load`` wraps the step, not its function: the wrapper
    runs once while the pipeline is built (timing, logging or retrying
    nothing) and never when the step runs, so it quietly does not do its job.
    """
    decorator = wrapper.__code__.co_qualname.partition(".<locals>")[0]
    return (f"step '{step.name}' ({step.site}) is wrapped by `{decorator}` ({definition_site(wrapper)}), "
            f"written above @step: `{decorator}` runs while the pipeline is built, not when the step runs. "
            f"Put @step above @{decorator}.")


def a_generator(fn: types.FunctionType, name: str | None) -> str:
    """Why ``@step`` refuses a generator function, and the fix.

    Calling one only makes a generator: nothing of the step has run yet, and a
    generator can be neither hashed nor stored. Said where the step is
    decorated, not after its upstream steps ran.
    """
    kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
    collect = "[item async for item in ...]" if inspect.isasyncgenfunction(fn) else "list(...)"
    return (f"@step '{name or fn.__name__}' ({definition_site(fn)}) is {kind} function (it uses yield): "
            "calling it runs none of its code and returns a generator, which cannot be stored. "
            f"Collect the items inside the step and return them (`return {collect}`).")


# Names other orchestrators (Prefect, Airflow, Celery, Dagster) use for an option @step spells differently.
_OPTION_SYNONYMS = {"retry": "retries", "max_retries": "retries", "retry_delay_seconds": "retry_delay",
                    "delay": "retry_delay", "timeout_seconds": "timeout", "execution_timeout": "timeout",
                    "retry_policy": "retries"}
# Options of other orchestrators (Prefect's) for what happens here without one: what does it instead.
_OPTION_NOTES = {
    "cache_key_fn": "a step's key is made from its code, parameters and inputs already; @step(version=...) "
                    "gives it new keys by hand",
    "cache_expiration": "a stored result is used until the step's code, parameters or inputs change, or "
                        "orch cache gc removes it; @step(cache=False) runs the step every time",
    "persist_result": "every output is stored already; @step(cache=False) runs the step every time",
    "log_prints": "what a step prints and logs is kept on every run already (orch logs RUN:STEP)",
}


def unknown_option_message(decorator: str, unknown: dict[str, Any], options: Sequence[str]) -> str:
    """One line naming a mistyped decorator option (``retry=3``), the close match and the options."""
    first = next(iter(unknown))
    if first in _OPTION_NOTES:
        return f"{decorator} has no option '{first}' ({call_site()}): {_OPTION_NOTES[first]}."
    synonym = _OPTION_SYNONYMS.get(first)
    hint = f" Did you mean '{synonym}'?" if synonym in options else did_you_mean(first, options)
    listed = "" if hint else f" Its options: {', '.join(options)}."
    return f"{decorator} has no option '{first}' ({call_site()}).{hint}{listed}"


def name_by_position_message(decorator: str, text: str) -> str:
    """Why ``@step("load")`` (Prefect's and Airflow's spelling) fails, and how to name it.

    The text would otherwise be taken for the function to decorate, and the
    user told that a name is not a function.
    """
    return (f"{decorator}({text!r}) ({call_site()}): a name is given by keyword, "
            f"{decorator}(name={text!r}).")


def unordered_items(items: Any, where: str) -> str | None:
    """Why ``NAME.map(items)`` in a pipeline body would not map over what its author meant, or None.

    Not a collection at all (``5``, None); a dict (or other mapping) iterates
    over its keys, a string over its characters, a set in an order that can
    change from run to run (strings hash differently in each process), and a
    DataFrame over its column names.
    ``where`` is ``train.map() (pipe.py:12)``.
    """
    kind = type(items).__name__
    if items is None or not hasattr(items, "__iter__"):
        article = "an" if kind[:1] in tuple("aeiouAEIOU") else "a"
        return f"{where} needs a list of items, but got {'None' if items is None else f'{article} {kind}'}"
    if isinstance(items, (str, bytes)):
        return f"{where} got a {kind}, whose items would be its characters: pass a list of them"
    if isinstance(items, Mapping):
        return (f"{where} got a {kind}, whose items would be its keys: pass list(d.values()), "
                f"or list(d.items()) for (key, value) pairs")
    if isinstance(items, AbstractSet):
        return f"{where} got a {kind}, whose order can change from run to run: pass sorted(...) or a list"
    if hasattr(items, "columns") and hasattr(items, "iterrows"):
        return (f"{where} got a {kind}, whose items would be its column names: pass a list of frames "
                f"([g for _, g in df.groupby(...)]), or map over a step that returns one")
    return None


def refuse_placeholders(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a plain call of step ``name`` (no pipeline being built here) that is given a placeholder.

    A placeholder only stands for a value inside the body that made it. A step
    called with one outside that body, most often from a thread the body
    started (``ThreadPoolExecutor().submit(fit, train)``: the trace belongs to
    the body's own thread), would run at once, while the pipeline is built,
    and be neither a node nor cached. Only the arguments themselves and the
    items of a list, tuple or dict among them are looked at, so that a plain
    call of a step on a large list stays as cheap as calling its function.
    """
    for value in (*args, *kwargs.values()):
        items = value.values() if type(value) is dict else value if type(value) in (list, tuple, Outputs) \
            else (value,)
        if len(items) > 64:
            continue
        placeholder = next((v for v in items if isinstance(v, Output)), None)
        if placeholder is not None:
            where = user_site(fallback=False)
            shown = f" at {where}" if where else ""  # a pool's thread runs none of the user's lines
            raise PipelineDefinitionError(
                f"step '{name}' is called{shown} with the output of step '{placeholder.node}' outside the "
                "pipeline body that made it (in a thread the body started, or after it was built), so it "
                "would run at once, as a plain function. Call steps in the body itself, not through a "
                "thread pool: each call becomes a node, and independent nodes run in parallel with "
                "--executor process."
            )


def context_parameter(step: Step) -> str | None:
    """The step's first parameter if it is Dagster's ``context`` (an op's, an asset's), else None.

    Only a parameter that reads as such an object counts (``context`` or
    ``ctx``, first after any ``self``, unannotated or annotated with a
    ``...Context`` type): a ``context: dict`` the step takes as data gets the plain line.
    """
    names = [n for n in step.signature.parameters if n != "self"]
    if not names or names[0] not in ("context", "ctx"):
        return None
    annotation = step.signature.parameters[names[0]].annotation
    shown = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if annotation is not inspect.Parameter.empty and "Context" not in shown:
        return None
    return names[0]


def context_hint(step: Step, context: str, missing: str) -> str:
    """What replaces a context object here. Called without it, the step misses ``context``
    (``load(path=p)``) or, its first argument having gone to ``context``, the next one (``load(p)``)."""
    went = "" if missing == context else f" (the first argument went to '{context}')"
    return (f" Steps get no context object{went}: remove '{context}' and take config as parameters; what the "
            f"step prints or logs is kept (`orch logs RUN:{step.name}`), and the run's id, status and outputs "
            f"are on the Run after it (run.id, run.steps).")
