"""``@step``: the decorated function and its settings.

A ``Step`` wraps a plain function. Called outside a pipeline it simply runs
the function, so steps stay unit-testable. Called while a ``@pipeline`` body
is being traced, it runs nothing: it records a ``Call`` in the active
``Trace`` and returns ``Output`` placeholders that later calls take as
inputs (``tracing``). What its signature declares is read by
``step_signature``, and the messages for mistakes made decorating or calling
it are ``step_checks``'. This module knows nothing of graphs, stores or execution.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, Never, ParamSpec, Protocol, TypeVar, overload

from orchestrator.autoreload import teach_autoreload
from orchestrator.direct_call import DIRECT_BODY, call_from_body
from orchestrator.errors import PipelineDefinitionError, UserError, did_you_mean
from orchestrator.fingerprint import code_root
from orchestrator.handover import LOAD, handover
from orchestrator.retry import RetryPolicy
from orchestrator.sites import call_site, definition_site, user_site, written_name
from orchestrator.step_checks import (
    a_generator,
    context_hint,
    context_parameter,
    decorated_above,
    name_by_position_message,
    not_a_function,
    refuse_placeholders,
    unknown_option_message,
    unordered_items,
    wraps_step,
)
from orchestrator.step_signature import call_layout, never_none, output_names, path_parameters, tuple_elements
from orchestrator.tracing import (
    ACTIVE_TRACE,
    MAP_ITEM,
    SINGLE_OUTPUT,
    Call,
    Output,
    Outputs,
    Trace,
    iter_outputs,
)
from orchestrator.warning_files import in_attempt, warnings_noted

# A step's parameters and return type, so that a type checker sees a step (called outside a
# pipeline, or in a body, where its placeholders stand for its values) as the function it wraps.
P = ParamSpec("P")
R = TypeVar("R")

_CALL_IT = ("in a pipeline body, call the step itself (`{name}(...)`): each call is a node, and nodes that do not "
            "need each other run at the same time with --executor process (or dask).")
_SETTINGS = ("give retries, timeout and the like to @step(...) where the step is defined, and a call's node "
             "name with .alias(\"name\").")
_RUN_IT = ("a step runs as a node of a pipeline: call it in a @pipeline body and run that (`p.run()`, cached "
           "and recorded), or call `{name}(...)` to run the plain function.")
#: Methods other orchestrators' tasks have (Prefect, Celery, ZenML), and this orchestrator's way of doing the same;
#: and a pipeline's methods, which a notebook tries on a step.
_PEER_METHODS = {
    "run": _RUN_IT,
    "plan": _RUN_IT,
    "submit": _CALL_IT,
    "delay": _CALL_IT,
    "apply_async": _CALL_IT,
    "with_options": _SETTINGS,
    "configure": _SETTINGS,  # ZenML
}
_WAIT_FOR_HINT = (" A step runs after the steps whose outputs it takes: pass what it needs as an argument (a "
                  "step that writes a file returns its path, `-> Path`, for the next one to take).")


class Step(Generic[P, R]):
    """A decorated function plus its settings. See :func:`step`.

    Generic in the function's parameters and return type (``Step[[int], float]``
    for ``def f(n: int) -> float``): only type checkers use them.
    """

    _is_orchestrator_step = True

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        retry: RetryPolicy,
        cache: bool = True,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        untracked: frozenset[str] = frozenset(),
    ) -> None:
        teach_autoreload()  # a notebook's %autoreload upgrades a step imported by name
        root = code_root(fn)
        if root is None:
            raise UserError(not_a_function(fn))
        if inspect.isgeneratorfunction(root) or inspect.isasyncgenfunction(root):
            raise UserError(a_generator(root, name))
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        self.fn = fn
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise UserError(f"step name {name!r} ({definition_site(root)}) is not a valid name. "
                            "Use letters, digits and underscores.")
        self.name: str = name or str(getattr(fn, "__name__", root.__name__))  # a partial has no name
        self.site = definition_site(root)
        written = written_name(fn, root)
        if written is not None:
            self.name, self.site = name or written[0], written[1]
        self.retry = retry
        self.cache = cache
        self.version = None if version is None else str(version)
        self.untracked = untracked  # names of path constants the user says are not inputs (no warning)
        self.signature = inspect.signature(fn)
        self.output_names = output_names(fn, outputs, self.name, self.site)
        plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in self.signature.parameters.values())
        self._simple_names: tuple[str, ...] | None = tuple(self.signature.parameters) if plain else None
        self._simple_defaults = {n: p.default for n, p in self.signature.parameters.items()
                                 if p.default is not p.empty}
        self.call_layout = call_layout(self.signature)
        self.path_params = path_parameters(fn, self.signature)

    if not typing.TYPE_CHECKING:  # a type checker still flags `fit.mapp(...)`: Step has no such attribute
        def __getattr__(self, attr: str) -> Any:
            # Reached only for a name a step does not have: a habit of another orchestrator gets its fix.
            _refuse_missing(self, attr, self.__dict__.get("name", "?"))  # before __init__ set it: unpickling

    def declared_type(self, output: str) -> str | None:
        """The return annotation of ``output`` if it rules out None (``-> list``), else None.

        None for no annotation, ``None``, ``Optional[...]``/``X | None``,
        ``Any`` and ``object``. The runner uses it, only when a step fails, to
        say that an input was None because its producer forgot to return.
        """
        annotation = self.signature.return_annotation
        if self.multiple_outputs:
            # Only a tuple[...] annotation names each output's type; outputs=(...) alone does not.
            elements = (tuple_elements(annotation) or ()) if isinstance(annotation, str) \
                else typing.get_args(annotation)
            if len(elements) != len(self.output_names) or output not in self.output_names:
                return None
            annotation = elements[self.output_names.index(output)]
        return never_none(annotation)

    @property
    def multiple_outputs(self) -> bool:
        return self.output_names != (SINGLE_OUTPUT,)

    def __repr__(self) -> str:
        return f"<step {self.name!r} ({self.site})>"

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Step[P, R]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> _BoundStep[R]: ...

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        # A step defined in a class body behaves like a plain function there, .alias() and .map() included.
        return self if obj is None else _BoundStep(self, obj)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = ACTIVE_TRACE.get()
        if trace is None:
            if args or kwargs:
                refuse_placeholders(self.name, args, kwargs)
            if in_attempt():  # a step calling another as a plain function: its attempt notes the warnings
                return self.fn(*args, **kwargs)
            with warnings_noted():  # what it warns is shown again by the step's next attempt
                if DIRECT_BODY.get():  # in a pipeline function called as a plain function: outputs as a run gives them
                    return call_from_body(self.fn, self.name, self.output_names, args, kwargs)
                return self.fn(*args, **kwargs)
        # What the step's module binds its name to: a function wrapping the step itself is a
        # decorator written above @step.
        fn = self.fn
        wrapper = fn.__globals__.get(fn.__name__) if type(fn) is types.FunctionType else None
        if type(wrapper) is types.FunctionType and wraps_step(wrapper, self) \
                and wrapper.__code__ is sys._getframe(1).f_code:
            problem = decorated_above(self, wrapper)
            if problem not in trace.problems:
                trace.problems.append(problem)
        return self._record(trace, args, kwargs, alias=None)

    def alias(self, name: str) -> _Aliased[P, R]:
        """Call this step under an explicit node name: ``fit.alias("fit_small")(train)``."""
        if not isinstance(name, str) or not name.isidentifier():
            # Most often made in a loop from a value (f"fit_{alpha}" with alpha=0.1): say where.
            raise UserError(
                f"step alias {name!r} of step '{self.name}' ({call_site()}) is not a valid name. "
                "Use letters, digits and underscores (f\"fit_{i}\" with a loop's index, not a value "
                "such as 0.1)."
            )

        return _Aliased(self, name)

    def map(self, items: Any, *args: Any, **kwargs: Any) -> list[R]:
        """Call the step once per item (the item is its first argument); the results in item order.

        Inside a pipeline each item becomes its own node (``square``,
        ``square_2``, …), cached and recorded on its own. ``items`` is a list,
        or a step's output holding one: then the nodes are made when that step
        is done, and passing the map's result to another step delivers the
        list of results. Other arguments, positional (after the item) or by
        name, are the same for every item. Outside a pipeline this is a list
        comprehension.
        """
        return self._map(items, args, kwargs, None)

    def _map(self, items: Any, args: tuple[Any, ...], kwargs: dict[str, Any], alias: str | None,
             lead: tuple[Any, ...] = ()) -> Any:
        """``map`` (under ``alias``); ``lead`` is the instance a step of a class body is read from,
        passed before the item."""
        trace = ACTIVE_TRACE.get()
        if trace is not None and not isinstance(items, Output):
            problem = unordered_items(items, f"{alias or self.name}.map() ({call_site()})")
            if problem is not None:
                # Iterating it would map over its keys, its characters or an order that changes
                # between runs (a set of strings), without a word.
                trace.problems.append(problem + ".")
                return []
        if trace is None or not isinstance(items, Output):
            if alias is None or trace is None:
                results = [self(*lead, item, *args, **kwargs) for item in items]
            else:
                results = [_Aliased(self, alias if i == 0 else f"{alias}_{i + 1}", lead)(item, *args, **kwargs)
                           for i, item in enumerate(items)]
            if trace is not None:
                for call in trace.calls[len(trace.calls) - len(results):]:
                    call.in_map = f"{alias or self.name}.map"
            return results
        site = call_site()
        name = trace.node_name(f"{alias or self.name}.map", None, site)
        arguments = _as_of_call(trace, self._bind(trace, (*lead, MAP_ITEM, *args), kwargs, site), self, site)
        output = Output(name, SINGLE_OUTPUT)
        trace.check_ids(arguments, name, site)
        trace.hand_out((output,))
        trace.calls.append(Call(name=name, step=self, arguments=arguments, site=site, outputs=(output,),
                                map_over=items))
        return output

    def _record(self, trace: Trace, args: tuple[Any, ...], kwargs: dict[str, Any], alias: str | None) -> Any:
        site = call_site()
        name = trace.node_name(self.name, alias, site)
        arguments = _as_of_call(trace, self._bind(trace, args, kwargs, site), self, site)
        outputs = tuple(Output(name, out) for out in self.output_names)
        trace.check_ids(arguments, name, site)
        trace.hand_out(outputs)
        trace.calls.append(Call(name=name, step=self, arguments=arguments, site=site, outputs=outputs))
        return Outputs(outputs) if self.multiple_outputs else outputs[0]

    def _bind(self, trace: Trace, args: tuple[Any, ...], kwargs: dict[str, Any], site: str) -> dict[str, Any]:
        fast = self._bind_simple(args, kwargs)
        if fast is not None:
            return fast
        params = self.signature.parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        problems = []
        if not takes_kwargs:
            for key in kwargs:
                if key not in params:
                    problems.append(
                        f"step '{self.name}' ({site}) has no parameter '{key}'."
                        + (_WAIT_FOR_HINT if key == "wait_for" else did_you_mean(key, params))
                    )
        try:
            bound = self.signature.bind_partial(*args, **{k: v for k, v in kwargs.items() if takes_kwargs or k in params})
        except TypeError as exc:
            problems.append(f"step '{self.name}' ({site}): {exc}. Check the call's arguments.")
            trace.problems.extend(problems)
            return {}
        bound.apply_defaults()
        missing = [pname for pname, param in params.items()
                   if pname not in bound.arguments and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)]
        unknown = [key for key in kwargs if key not in params] if not takes_kwargs else []
        if unknown and missing:
            # One mistake, most likely: an input given under another name, misspelt (`fit(alpah=...)`,
            # said by the line above with its match) or not (`fit(data=x)` for `fit(frame)`): one line.
            if not any(did_you_mean(k, missing) for k in unknown):
                given = ", ".join(f"'{k}'" for k in unknown)
                wanted = ", ".join(f"'{m}'" for m in missing)
                problems = [p for p in problems if not any(f"has no parameter '{k}'." in p for k in unknown)]
                problems.append(
                    f"step '{self.name}' ({site}) has no parameter {given}, and the call does not give its input "
                    f"{wanted}. Name the argument after the step's parameter ({missing[0]}=...).")
            trace.problems.extend(problems)
            return dict(bound.arguments)
        context = context_parameter(self)  # said once, on the first missing input
        for pname, param in params.items():
            if pname not in bound.arguments and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                problems.append(
                    f"step '{self.name}' ({site}) is called without input '{pname}'. Pass a step output or a value."
                    + (context_hint(self, context, pname) if context else _wiring_hint(self, pname, trace))
                )
                context = None
        trace.problems.extend(problems)
        return dict(bound.arguments)

    def _bind_simple(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """Bind a correct call of a plain signature without ``inspect`` (the common, hot case).

        Returns None for anything unusual (``*args``, keyword-only parameters,
        a mistake), which ``_bind`` then handles and explains.
        """
        names = self._simple_names
        if names is None or len(args) > len(names):
            return None
        if not kwargs and len(args) == len(names):
            return dict(zip(names, args))
        bound = dict(zip(names, args))
        for key, value in kwargs.items():
            if key in bound or (key not in self._simple_defaults and key not in names):
                return None
            bound[key] = value
        if len(bound) < len(names):
            for key, default in self._simple_defaults.items():
                bound.setdefault(key, default)
            if len(bound) < len(names):
                return None
        return {name: bound[name] for name in names}


def _refuse_missing(owner: object, attr: str, name: str) -> Never:
    """Raise for ``attr`` missing on a step, as read from its class, an instance or an alias.

    A habit of another orchestrator (``.submit()``) gets this one's way of doing
    it: a ``PipelineDefinitionError`` in a body, else an ``AttributeError`` with
    the same words, so that ``hasattr`` still answers False.
    """
    habit = _PEER_METHODS.get(attr)
    if habit is None:
        raise AttributeError(f"{type(owner).__name__!r} object has no attribute '{attr}'")
    message = f"step '{name}' has no .{attr}() ({user_site()}): {habit.format(name=name)}"
    if ACTIVE_TRACE.get() is not None:
        raise PipelineDefinitionError(message)
    raise AttributeError(message)


def _wiring_hint(step: Step, pname: str, trace: Trace) -> str:
    """For a missing input named after a step (Hamilton's and Dagster's wiring by name): how to pass its output."""
    called = next((c for c in trace.calls if c.step.name == pname), None)
    if called is not None:
        return (f" Parameters are not wired to the steps they are named after: keep the output of step "
                f"'{pname}' ({called.site}) and pass it, `x = {pname}(...)` then `{step.name}({pname}=x)`.")
    code = getattr(code_root(step.fn), "__globals__", {})
    if isinstance(code.get(pname), Step):
        return (f" Parameters are not wired to the steps they are named after: call step '{pname}' in the body "
                f"and pass its output, `{step.name}({pname}={pname}(...))`.")
    return ""


class _Aliased(Generic[P, R]):
    """A step called under an explicit node name (``fit.alias("fit_small")``); also maps under it."""

    __slots__ = ("lead", "name", "step")

    def __init__(self, step: Step[P, R], name: str, lead: tuple[Any, ...] = ()) -> None:
        self.step, self.name, self.lead = step, name, lead  # lead: the instance of a step of a class body

    def __repr__(self) -> str:
        return f"<step {self.step.name!r} as {self.name!r} ({self.step.site})>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = ACTIVE_TRACE.get()
        if trace is None:
            if args or kwargs:
                refuse_placeholders(self.name, args, kwargs)
            if in_attempt():
                return self.step.fn(*self.lead, *args, **kwargs)
            with warnings_noted():
                if DIRECT_BODY.get():
                    return call_from_body(self.step.fn, self.name, self.step.output_names, (*self.lead, *args), kwargs)
                return self.step.fn(*self.lead, *args, **kwargs)
        return self.step._record(trace, (*self.lead, *args), kwargs, alias=self.name)

    def map(self, items: Any, *args: Any, **kwargs: Any) -> list[R]:
        """Like ``Step.map``; the items are named ``NAME``, ``NAME_2``, …"""
        return self.step._map(items, args, kwargs, self.name, self.lead)

    if not typing.TYPE_CHECKING:  # as on Step: hidden so that a misspelt attribute stays a type error
        def __getattr__(self, attr: str) -> Any:
            if attr in _Aliased.__slots__:  # not set yet (a copy being made): a plain AttributeError
                raise AttributeError(attr)
            _refuse_missing(self, attr, self.step.name)


class _BoundStep(functools.partial, Generic[R]):  # type: ignore[type-arg]
    """A step of a class body read from an instance (``trainer.fit``): the step with the instance first.

    A ``functools.partial`` of the step, so it calls, hashes and is decorated
    as one, that also has the step's ``.alias()`` and ``.map()``, which a
    plain partial lacked (``trainer.fit.map(items)`` failed with an
    AttributeError on the partial).
    """

    def alias(self, name: str) -> _Aliased[..., R]:
        """Call this step of ``self.args[0]`` under an explicit node name, as ``Step.alias``."""
        step: Step[..., R] = self.func  # type: ignore[assignment]  # always a Step (Step.__get__)
        return _Aliased(step.alias(name).step, name, self.args)

    def map(self, items: Any, *args: Any, **kwargs: Any) -> list[R]:
        """Like ``Step.map``, each item passed after the instance."""
        step: Step[..., R] = self.func  # type: ignore[assignment]  # always a Step (Step.__get__)
        return step._map(items, args, kwargs, None, self.args)  # type: ignore[no-any-return]

    if not typing.TYPE_CHECKING:  # as on Step: hidden so that a misspelt attribute stays a type error
        def __getattr__(self, attr: str) -> Any:
            _refuse_missing(self, attr, getattr(self.func, "name", "?"))


class _StepDecorator(Protocol):
    """What ``@step(...)`` returns, for type checkers: it types a step as ``step(fn)`` does."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, Any]], /) -> Step[P, Any]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Step[P, R]: ...


# An async def step returns a coroutine when called as a plain function but stands for the awaited
# value in a pipeline body: no return type fits both, so it is typed by its parameters only.
@overload
def step(fn: Callable[P, Coroutine[Any, Any, Any]]) -> Step[P, Any]: ...
@overload
def step(fn: Callable[P, R]) -> Step[P, R]: ...


@overload
def step(
    fn: None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
    backoff: float = 1.0,
    max_delay: float = 300.0,
    jitter: float = 0.1,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | list[type[BaseException]] = (Exception,),
    timeout: float | None = None,
    cache: bool = True,
    version: str | int | None = None,
    outputs: Sequence[str] | None = None,
    untracked: str | Sequence[str] = (),
) -> _StepDecorator: ...


def step(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
    backoff: float = 1.0,
    max_delay: float = 300.0,
    jitter: float = 0.1,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | list[type[BaseException]] = (Exception,),
    timeout: float | None = None,
    cache: bool = True,
    version: str | int | None = None,
    outputs: Sequence[str] | None = None,
    untracked: str | Sequence[str] = (),
    **unknown: Never,
) -> Any:
    """Make a function a pipeline step.

    Use bare (``@step``) or with settings (``@step(retries=3, timeout=60)``).
    A type checker sees the step as the function it wraps (its parameters and
    return type), both where it is called as a plain function and in a
    pipeline body, where its placeholders stand for its values.

    Args:
        name: node name (default: the function's name).
        retries: extra attempts after a failure; ``retries=N`` allows N+1 attempts.
        retry_delay: seconds before the first retry; later ones grow by ``backoff``.
        backoff: factor between successive delays (with ``jitter``, capped at ``max_delay``).
        retry_on: exception classes that are retried (one, a tuple or a list); others fail at once.
        timeout: seconds an attempt may run; then it is stopped and counts as failed.
        cache: ``False`` runs the step every time.
        version: change it to force new cache keys by hand.
        outputs: names of several outputs (otherwise a ``tuple[...]`` return
            annotation gives one output per element).
        untracked: names of path constants the step uses that are not its
            inputs (``"OUT"`` for ``OUT = Path("outputs")`` it writes to): no
            warning that their files' content is not in the key; also
            ``"import_module"`` or ``"__import__"``, for a module it imports by
            a name known only when it runs.

    Retry, timeout, cache and untracked settings are not part of the cache
    key: changing them re-runs nothing.

    Raises:
        UserError: an unknown option (``retry=3``, with the close match) or a
            setting out of range, naming the step and where it is decorated.
    """
    if unknown:
        raise UserError(unknown_option_message("@step", unknown, _STEP_OPTIONS))
    if isinstance(fn, str):
        raise UserError(name_by_position_message("@step", fn))

    names = (untracked,) if isinstance(untracked, str) else untracked

    def wrap(f: Callable[..., Any]) -> Step[..., Any]:
        if not isinstance(cache, bool):
            problem = f"cache must be True or False, got {cache!r}"
        elif not isinstance(names, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in names):
            problem = (f"untracked must name path constants, as a string or a list of strings "
                       f"(untracked=[\"OUT\", \"LOG\"]), got {untracked!r}")
        else:
            try:
                policy = RetryPolicy(
                    retries=retries, delay=retry_delay, backoff=backoff, max_delay=max_delay,
                    jitter=jitter, retry_on=retry_on,  # type: ignore[arg-type]  # made a tuple there
                    timeout=timeout,
                )
            except UserError as exc:
                problem = str(exc)
            else:
                return Step(f, name=name, retry=policy, cache=cache,
                            version=None if version is None else str(version), outputs=outputs,
                            untracked=frozenset(names))
        label = name or getattr(f, "__name__", None)
        shown = f" '{label}'" if isinstance(label, str) else ""
        where = definition_site(code_root(f) or f) if callable(f) else call_site()
        raise UserError(f"@step{shown} ({where}): {problem}.")

    return wrap(fn) if fn is not None else wrap


_STEP_OPTIONS = ("name", "retries", "retry_delay", "backoff", "max_delay", "jitter", "retry_on",
                 "timeout", "cache", "version", "outputs", "untracked")


def _as_of_call(trace: Trace, arguments: dict[str, Any], step: Step, site: str) -> dict[str, Any]:
    """The call's arguments as they are now, which later changes in the body or a step cannot reach.

    A step called in a pipeline body runs after the body has returned, so an
    argument the body changes after the call (``cfg["lr"] = lr`` in a loop of
    calls) or a step changes in place (a module-level array) would reach the
    call, while its key and the other executors, which pickle it, see it as
    it was. A copy taken here keeps the call's own value, as a plain call sees it.
    """
    copied = {}
    for name, value in arguments.items():
        if type(value) in _AS_IS:
            copied[name] = value
            continue
        if isinstance(value, (Step, _Aliased)):
            problem = _a_step_for_its_output(step, name, value, site)
            if problem is not None:
                trace.problems.append(problem)
        copied[name] = _as_of_now(trace, value)
    return copied


def _a_step_for_its_output(step: Step, name: str, given: Step | _Aliased, site: str) -> str | None:
    """Why passing step ``given`` itself as argument ``name`` of ``step`` is a mistake, or None when it may not be.

    ``doubled(raw)`` (parameters named after steps wire themselves in Hamilton and
    Dagster) or ``total(load)`` for ``total(load(n))`` would hand the step a function
    where it expects the data, and fail only when it runs. A step passed where a
    function may be meant (a parameter of another name, not annotated as data) is let be.
    """
    given_name = given.step.name if isinstance(given, _Aliased) else given.name
    param = step.signature.parameters.get(name)
    annotation = param.annotation if param is not None else inspect.Parameter.empty
    if isinstance(annotation, str):
        data = annotation.split("[")[0] in _DATA_WORDS
    else:
        data = isinstance(annotation, type) and annotation not in (object, inspect.Parameter.empty) \
            and not issubclass(annotation, (type, Callable))  # type: ignore[arg-type]
    if given_name != name and not data:
        return None
    by_name = "; parameters are not wired to the steps they are named after" if given_name == name else ""
    return (f"step '{step.name}' ({site}) is given step '{given_name}' itself as '{name}', not its output: "
            f"call it in the body and pass what it returns (`{step.name}({name}={given_name}(...))`){by_name}.")


#: Annotations written as text (``from __future__ import annotations``) that name data, not a function.
_DATA_WORDS = frozenset({"list", "dict", "tuple", "set", "int", "float", "str", "bytes", "bool",
                         "pd.DataFrame", "pd.Series", "DataFrame", "Series", "np.ndarray", "ndarray", "Path"})


#: Argument types taken as they are, without a call: outputs, and plain values that cannot change.
_AS_IS = frozenset({Output, int, float, str, bool, bytes, type(None)})


def _as_of_now(trace: Trace, value: Any) -> Any:
    """``value`` copied, keeping the outputs and map items inside lists, tuples and dicts as they are."""
    if type(value) is Output or value is MAP_ITEM:
        return value
    kind = type(value)
    if kind is Outputs:
        value, kind = tuple(value), tuple  # a step given a call's outputs whole gets the plain tuple
    if kind is list or kind is tuple:
        if any(item is MAP_ITEM or next(iter_outputs(item), None) is not None for item in value):
            return kind(_as_of_now(trace, item) for item in value)
    elif kind is dict and next(iter_outputs(value), None) is not None:
        return {key: _as_of_now(trace, item) for key, item in value.items()}
    if not type(value).__module__.startswith("numpy"):  # an array's copy costs its data: copy_of shares it
        shared = handover(value)
        if shared is not LOAD:
            return shared  # a value that cannot change, or a pandas object's copy, which costs no data
    return trace.copy_of(value)


