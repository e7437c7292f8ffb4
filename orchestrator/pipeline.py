"""``@pipeline``: a function whose body wires steps together, traced into a DAG.

The body runs as plain Python with the actual parameter values, so loops,
``if`` and string handling work; only step calls are recorded (see
``step.Trace``). ``Pipeline.run`` and ``Pipeline.plan`` hand the DAG to the
runner, imported lazily because the runner sits above this module.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import types
from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, Never, overload

from orchestrator.autoreload import teach_autoreload
from orchestrator.body_warnings import body_warnings_on_one_line
from orchestrator.dag import DAG, build_dag
from orchestrator.direct_call import direct_body, plain_calls
from orchestrator.errors import (
    OrchestratorError,
    ParameterError,
    PipelineDefinitionError,
    UserError,
    did_you_mean,
    short_traceback,
)
from orchestrator.sites import call_site, definition_site
from orchestrator.step import P, R, Step
from orchestrator.step_checks import name_by_position_message, unknown_option_message
from orchestrator.tracing import Call, Trace, active_trace, tracing

if TYPE_CHECKING:
    from orchestrator.planner import Plan
    from orchestrator.results import Run
    from orchestrator.run_options import RunOptions
    from orchestrator.spelling import Spelling

#: Keyword arguments of ``Pipeline.run`` that are run options, not pipeline parameters.
RUN_OPTIONS = frozenset(
    {"store", "executor", "workers", "address", "metadata", "rerun", "no_cache", "verbose",
     "progress", "params", "params_from"}
)


class Pipeline(Generic[P, R]):
    """A decorated pipeline function. See :func:`pipeline`.

    Generic in the function's parameters and return type, for type checkers:
    calling it (``training(n=3)``) runs the body as the function would.
    """

    _is_orchestrator_pipeline = True

    def __init__(self, fn: Callable[P, R], name: str | None = None) -> None:
        if not callable(fn):
            raise UserError(f"@pipeline needs a function, got {fn!r} ({call_site()}).")
        if isinstance(fn, (Step, Pipeline, type)):
            # Copying a step's attributes (update_wrapper, below) would make the pipeline's body
            # the step's plain function, which records nothing.
            kind, shown = ("class", fn.__name__) if isinstance(fn, type) else \
                ("step" if isinstance(fn, Step) else "pipeline", str(getattr(fn, "name", "")))
            raise UserError(
                f"@pipeline cannot decorate {kind} '{shown}' ({call_site()}): "
                "a pipeline is a function whose body calls steps. Write @pipeline on such a function alone."
            )
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            # Calling it would only make a coroutine or a generator: no step call of its body would be
            # recorded, and the build would say it returned a plain value.
            kind = "a generator function (it uses yield)" if inspect.isgeneratorfunction(fn) else "an async function"
            raise UserError(
                f"@pipeline '{fn.__name__}' ({definition_site(fn)}) is {kind}: a body runs once, as a plain "
                "function, while the pipeline is built. Write a plain `def`, call async steps without "
                "`await` (each call is a node, awaited when it runs) and return the outputs."
            )
        teach_autoreload()  # a notebook's %autoreload upgrades a pipeline imported by name
        self.fn = fn
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise UserError(f"pipeline name {name!r} ({definition_site(fn)}) is not a valid name. "
                            "Use letters, digits and underscores.")
        self.name = name or fn.__name__
        self.site = definition_site(fn)
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)  # help(p) and inspect.signature(p) show the function's

    def __get__(self, obj: object, objtype: type | None = None) -> Pipeline[P, R]:
        # A pipeline in a class body stays this pipeline; being a descriptor also makes
        # help() document it as a function, with its signature and docstring. Written as a method
        # (`def flow(self)`, as a class-based flow of Metaflow or ZenML is) and read from an
        # instance, it is bound to it as a method is: its body gets the instance, and `self` is
        # no parameter of the run (`Training(4).flow.run()` asked for `self=VALUE`).
        if obj is None or next(iter(self.signature.parameters), None) != "self":
            return self
        return Pipeline(types.MethodType(self.fn, obj), name=self.name)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<pipeline {self.name!r} ({self.site})>"

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        return dict(self.signature.parameters)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the body as plain Python: steps run as plain functions, nothing is cached.

        A step of several outputs hands the body its outputs in order and by
        name, as in a run (``train, test = split(raw)``, ``split(raw).train``),
        also when it returns them as a dict.
        """
        with direct_body():
            return self.fn(*args, **kwargs)

    def resolve_params(self, params: dict[str, Any], spelling: Spelling | None = None) -> dict[str, Any]:
        """Check ``params`` against the signature and fill in defaults.

        ``spelling`` says how a missing parameter is asked for: ``-p n=VALUE``
        on the command line, ``n=...`` from Python (the default).

        Raises:
            ParameterError: for unknown names (with a close match) or missing ones.
        """
        from orchestrator.params import python_value_problem
        from orchestrator.spelling import PYTHON
        from orchestrator.type_hints import resolved_hints

        sig = self.signature.parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.values())
        hints = resolved_hints(self.fn) if params else {}
        problems = []
        for key in params:
            if key not in sig and not takes_kwargs:
                hint = did_you_mean(key, sig)
                problems.append(f"pipeline '{self.name}' has no parameter '{key}'.{hint}"
                                + ("" if hint else f" Its parameters: {', '.join(sig) or 'none'}."))
        values: dict[str, Any] = {}
        for pname, param in sig.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if pname in params:
                values[pname] = params[pname]
                problem = python_value_problem(hints.get(pname, param.annotation), params[pname])
                if problem:
                    problems.append(f"pipeline '{self.name}': parameter '{pname}' {problem}.")
            elif param.default is not param.empty:
                values[pname] = param.default
            else:
                problems.append(f"pipeline '{self.name}' needs parameter '{pname}', which has no default. "
                                f"Pass {(spelling or PYTHON).param(pname)}.")
        if takes_kwargs:
            values.update({k: v for k, v in params.items() if k not in sig})
        if problems:
            raise ParameterError("\n".join(problems))
        return values

    @short_traceback
    def build(self, *args: Any, file_memo: MutableMapping[str, str] | None = None, **params: Any) -> DAG:
        """Trace the body with ``params`` (defaults filled in) and return its DAG.

        Parameters are keywords, as for ``run``: a value passed by position
        would otherwise be taken for ``file_memo`` and the body built with
        the defaults, without a word.

        Raises:
            UserError: a value passed by position, an unknown parameter, or a
                mistake in the pipeline found while building it.
        """
        if args:
            raise UserError(f"{self.name}.build() got {args[0]!r} by position."
                            f"{self._keywords_hint('build', args[0]) or ' It takes pipeline parameters as keywords.'}")
        # In a body, a build of its own would record the calls in a DAG of their own, cut off from
        # the placeholders the body passes it ("comes from step 'load', which failed to build").
        self._refuse_while_building("build")
        values = self.resolve_params(params)
        trace = Trace()
        body: Callable[..., Any] = self.fn  # called with the parameters resolve_params checked
        with tracing(trace), body_warnings_on_one_line(self.name):
            try:
                result = body(**values)
            except PipelineDefinitionError as exc:
                # A placeholder misuse ends the body: the mistakes found before it (an unknown argument
                # of an earlier call) are named with it, so that one build reports them all.
                if all(problem in exc.problems for problem in trace.problems):
                    raise
                raise PipelineDefinitionError([*trace.problems, *exc.problems]) from exc
            except OrchestratorError:
                raise
            except SystemExit as exc:  # ended orch silently (exit 0 for `sys.exit()`), with no run
                raise PipelineDefinitionError([
                    *trace.problems,
                    f"the body of pipeline '{self.name}' ({self.site}) called sys.exit("
                    f"{'' if exc.code is None else repr(exc.code)}){_innermost_user_line(exc)}. The body runs "
                    "while the pipeline is built (also by orch plan and orch dag): to stop a run, raise an "
                    "error in a step, or check the parameters there.",
                ]) from None
            except Exception as exc:
                where = _innermost_user_line(exc)
                unpacked = _unpack_problem(exc, trace.calls, where)
                if unpacked is not None:
                    raise PipelineDefinitionError([*trace.problems, unpacked]) from exc
                # Python's own message names the placeholder's type (`'Output' object has no attribute`).
                hint = (" A step's output does not exist until the step runs: pass it to another step "
                        "and use it there." if "Output" in str(exc) else
                        " The body runs while the pipeline is built; fix it there.")
                # Problems found before it (a placeholder misuse a library caught and answered with an
                # error of its own) come first: they are most likely the cause.
                raise PipelineDefinitionError([
                    *trace.problems,
                    f"the body of pipeline '{self.name}' ({self.site}) raised {type(exc).__name__}: {exc}"
                    f"{where}.{hint}",
                ]) from exc
        return build_dag(self.name, values, trace.calls, result, trace.problems, file_memo=file_memo,
                         site=self.site, known_digests=trace.copy_digests())

    def _refuse_while_building(self, method: str) -> None:
        """A ``.run()`` in a pipeline body would run at every build (``orch plan``, ``orch dag`` too);
        a ``.build()`` there makes a DAG apart from the body's."""
        if active_trace() is not None:
            raise PipelineDefinitionError(
                f"{self.name}.{method}() is called at {call_site()} while a pipeline body is being built. "
                f"Call {self.name}(...) there instead to add its steps to that pipeline, or call "
                f".{method}() outside any pipeline."
            )

    @short_traceback
    def run(self, store: str | os.PathLike[str] | None = None, *, params: dict[str, Any] | None = None,
            metadata: str | os.PathLike[str] | None = None,
            executor: str | None = None, workers: int | None = None, address: str | None = None,
            rerun: str | Iterable[str] | None = (),
            no_cache: bool = False, verbose: bool = False, progress: Any = None,
            params_from: str | None = None, **kwargs: Any) -> Run:
        """Run the pipeline and return a ``Run``.

        Pipeline parameters are keyword arguments (or ``params={...}`` when a
        name collides with a run option). ``store`` defaults to ``$ORCH_STORE``,
        else the ``[tool.orchestrator]`` table of the project's pyproject.toml,
        else ``./cache``, as for ``orch run``; it may be an fsspec URL (``file://``, ``s3://``, ...),
        and then ``metadata`` names the local folder of the metadata database
        (default ``$ORCH_METADATA``). ``executor`` is ``"sequential"``
        (default), ``"process"`` or ``"dask"``; ``workers`` sizes the latter
        two; ``address`` is the scheduler of ``executor="dask"``. ``rerun``
        names a step, or several, to run whatever the cache holds;
        ``no_cache=True`` runs every step. ``progress=True`` shows live
        progress and a summary on stderr, as ``orch run`` does (default:
        nothing); an ``orchestrator.report.RunObserver`` receives the run's
        events instead (its ``run_closed`` last, however the run ends). ``verbose=True`` also shows what steps print as they
        run (it is captured and kept for ``orch logs`` either way), and keeps
        the whole traceback of a ``UserError``. ``params_from`` (a run id, a
        unique prefix, ``latest``, ``latest~N``) starts from the parameters an
        earlier run of this pipeline was given, as ``orch run --params-from``
        does; the keywords given here change them.

        Raises:
            UserError: an unknown parameter, a store that is no path or URL
                (``p.run(4)`` for ``p.run(n=4)``), an option of the wrong kind
                (``rerun=5``, ``no_cache="no"``), ``workers`` without an
                executor, or a mistake in the pipeline found while building it.
            KeyboardInterrupt: after recording the run as ``interrupted``.
        """
        from orchestrator.run_options import check_flag, check_options, observer
        from orchestrator.runner import run_pipeline
        from orchestrator.spelling import PYTHON

        self._refuse_while_building("run")
        teach_autoreload()  # the extension loaded after the pipeline was made: its next edit is followed
        location = self._store_argument("run", store)
        options = check_options(self.name, "run", params=params, kwargs=kwargs, metadata=metadata, rerun=rerun,
                                no_cache=no_cache)
        options = self._with_params_from(params_from, options, location)
        check_flag("verbose", verbose)
        observe = observer(progress, verbose)
        if address is not None and executor != "dask":
            raise UserError(f"address={address!r} names a Dask scheduler: use it with executor=\"dask\".")
        if workers is not None and executor is None:
            raise UserError(f"workers={workers} sizes a process pool or a Dask cluster, but steps run one at a time "
                            "without an executor: add executor=\"process\" (or \"dask\"), or drop workers.")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            # Else a raw TypeError from deep in the executor ('2'), or a message naming the CLI's --workers.
            raise UserError(f"workers={workers!r}: give a whole number of worker processes, 1 or more (workers=4).")
        with plain_calls():  # run from a pipeline function called directly: its steps' own calls stay plain
            run = run_pipeline(self, options.params, store=location, metadata=options.metadata,
                               executor=executor or "sequential", workers=workers, address=address,
                               rerun=options.rerun, no_cache=no_cache, verbose=verbose, progress=observe,
                               spelling=PYTHON)
        if observe is None and run.status == "failed":
            # `run = p.run()` in a notebook shows nothing, and a failed run is easy to miss: one WARNING
            # record, which Python prints on stderr unless the user's logging configuration says otherwise.
            import logging

            # As UTF-8 can hold it: a non-UTF-8 file name in the error (a lone surrogate) made a handler
            # writing to a UTF-8 file print "--- Logging error ---" and a traceback instead.
            error = (run.error or "").encode("utf-8", "replace").decode("utf-8")
            logging.getLogger("orchestrator").warning("pipeline '%s' failed: %s. Each step's traceback: "
                                                      "run.steps[name].traceback.", self.name, error)
        return run

    @short_traceback
    def plan(self, store: str | os.PathLike[str] | None = None, *, params: dict[str, Any] | None = None,
             metadata: str | os.PathLike[str] | None = None,
             rerun: str | Iterable[str] | None = (), no_cache: bool = False, params_from: str | None = None,
             **kwargs: Any) -> Plan:
        """What a run would do now: for each node, cached / will run / may run, and why.

        Takes the parameters and the options of ``run`` that change what would
        run (``store``, ``metadata``, ``rerun``, ``no_cache``, ``params_from``); it runs nothing.

        Raises:
            UserError: as ``run`` does, and for an option only ``run`` takes
                (``executor=``, ``workers=``, ``progress=``...).
        """
        from orchestrator.planner import plan_pipeline
        from orchestrator.run_options import check_options
        from orchestrator.spelling import PYTHON

        self._refuse_while_building("plan")
        location = self._store_argument("plan", store)
        options = check_options(self.name, "plan", params=params, kwargs=kwargs, metadata=metadata, rerun=rerun,
                                no_cache=no_cache)
        options = self._with_params_from(params_from, options, location)
        return plan_pipeline(self, options.params, store=location, metadata=options.metadata,
                             rerun=options.rerun, no_cache=no_cache, spelling=PYTHON)

    def _with_params_from(self, ref: str | None, options: RunOptions, store: str | None) -> RunOptions:
        """``options`` over the parameters run ``ref`` was given (``params_from=``), when it names one."""
        if ref is None:
            return options
        from dataclasses import replace

        from orchestrator.run_params import params_from_run

        recorded = params_from_run(ref, self.signature, self.fn, self.name, store=store, metadata=options.metadata)
        return replace(options, params={**recorded, **options.params})

    def _keywords_hint(self, method: str, value: Any) -> str:
        """`` Pipeline parameters are keywords: p.run(n=4).`` for a value passed by position, if it has any."""
        params = self.parameters
        if not params:
            return ""
        # The parameter the value is most likely meant for: the one of its type (`run(0.5)` with
        # `path: Path, alpha: float = 1.0` is alpha, not the first parameter).
        fitting = [name for name, p in params.items() if _takes(p, value, exact=True)] or \
            [name for name, p in params.items() if _takes(p, value, exact=False)]
        name = fitting[0] if fitting else next(iter(params))
        others = "" if len(fitting) == 1 or len(params) == 1 else f" (parameters: {', '.join(params)})"
        return f" Pipeline parameters are keywords: {self.name}.{method}({name}={value!r}){others}."

    def _store_argument(self, method: str, store: Any) -> str | None:
        """``store`` as text, or a ``UserError`` for a value of another kind (a parameter passed by position)."""
        if store is not None and not isinstance(store, (str, os.PathLike)):
            raise UserError(f"store must be a folder path or a URL, got {store!r} "
                            f"({type(store).__name__}).{self._keywords_hint(method, store)}")
        return None if store is None else os.fspath(store)


def _takes(param: inspect.Parameter, value: Any, *, exact: bool) -> bool:
    """Whether ``param`` is declared (annotation, else default) as the type of ``value``; ints fit
    floats unless ``exact``."""
    kind = param.annotation if isinstance(param.annotation, type) else (
        type(param.default) if param.default is not param.empty and param.default is not None else None)
    if kind is None or kind is object:
        return False
    if type(value) is bool or kind is bool:
        return kind is type(value)
    return isinstance(value, kind) or (not exact and kind is float and type(value) is int)


@overload
def pipeline(fn: Callable[P, R], *, name: str | None = None) -> Pipeline[P, R]: ...


@overload
def pipeline(fn: None = None, *, name: str | None = None) -> Callable[[Callable[P, R]], Pipeline[P, R]]: ...


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None,
             **unknown: Never) -> Any:
    """Make a function a pipeline: ``@pipeline`` or ``@pipeline(name="train")``.

    Raises:
        UserError: ``fn`` is no function, or an option other than ``name`` is given.
    """
    if unknown:
        raise UserError(unknown_option_message("@pipeline", unknown, ("name",)))
    if isinstance(fn, str):
        raise UserError(name_by_position_message("@pipeline", fn))
    if fn is not None:
        return Pipeline(fn, name=name)
    return lambda f: Pipeline(f, name=name)


_UNPACK = re.compile(r"(?:too many|not enough) values to unpack \(expected (\d+)(?:, got (\d+))?\)")


def _unpack_problem(exc: BaseException, calls: list[Call], where: str) -> str | None:
    """One line for ``a, b = split(raw)`` when step ``split`` has another number of outputs, else ``None``.

    Python's own words (``too many values to unpack (expected 2)``) name neither the step nor
    its outputs, and a newcomer reads them as a bug in the step rather than in the body's line.
    """
    match = _UNPACK.fullmatch(str(exc)) if isinstance(exc, ValueError) else None
    site = where.removeprefix(" at ")
    call = next((c for c in reversed(calls) if c.site == site and len(c.outputs) > 1), None)
    if match is None or call is None:
        return None
    names = [out._name for out in call.outputs]
    return (f"the result of step '{call.step.name}' ({call.step.site}) is unpacked into {match.group(1)} names at "
            f"{site}, but the step has {len(names)} outputs ({', '.join(names)}). Unpack {len(names)} names "
            f"({', '.join(names)} = {call.step.name}(...)), or take one output by name "
            f"({call.step.name}(...).{names[0]}).")


def _innermost_user_line(exc: BaseException) -> str:
    """`` at file.py:LINE`` of the deepest frame outside this package, or ``""``."""
    package = os.path.dirname(os.path.abspath(__file__))
    tb, where = exc.__traceback__, ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(package):
            where = f" at {os.path.basename(filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where
