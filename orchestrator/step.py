"""``@step``: the decorated function, its settings, and the tracing context.

A ``Step`` wraps a plain function. Called outside a pipeline it simply runs
the function, so steps stay unit-testable. Called while a ``@pipeline`` body
is being traced, it runs nothing: it records a ``Call`` in the active
``Trace`` and returns ``Output`` placeholders that later calls take as
inputs. This module knows nothing of graphs, stores or execution.
"""

from __future__ import annotations

import ast
import contextvars
import functools
import inspect
import linecache
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Generic, Never, ParamSpec, Protocol, TypeVar, overload

from orchestrator.errors import PipelineDefinitionError, UnhashableValueError, UserError, did_you_mean
from orchestrator.fingerprint import code_root
from orchestrator.handover import LOAD, handover, own_copy
from orchestrator.hashing import hash_value
from orchestrator.retry import RetryPolicy
from orchestrator.user_code import file_kind

# A step's parameters and return type, so that a type checker sees a step (called outside a
# pipeline, or in a body, where its placeholders stand for its values) as the function it wraps.
P = ParamSpec("P")
R = TypeVar("R")

_PATH_WORD = re.compile(r"\b(Path|PosixPath|WindowsPath)\b")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SINGLE_OUTPUT = "out"


def call_site(skip_package: bool = True) -> str:
    """``file.py:LINE`` of the innermost frame outside this package."""
    frame = sys._getframe(1)
    while frame is not None and skip_package and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown>"
    filename = frame.f_code.co_filename
    name = _BASENAMES.get(filename)
    if name is None:
        name = _BASENAMES[filename] = os.path.basename(filename)
    return f"{name}:{frame.f_lineno}"


_BASENAMES: dict[str, str] = {}  # co_filename -> its base name: call_site runs once per step call


def user_site(fallback: bool = True) -> str:
    """``file.py:LINE`` of the innermost frame in the user's own code (not a library's, not ours).

    For errors only: a placeholder misused inside ``pandas.concat`` should
    point at the pipeline body's line, not at pandas. Without such a frame
    (a thread of a pool runs only the standard library's), the innermost
    frame outside this package, or ``""`` when ``fallback`` is false.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if file_kind(frame.f_code.co_filename) == "user":
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return call_site() if fallback else ""


def definition_site(fn: Callable[..., Any]) -> str:
    """``file.py:LINE`` where ``fn`` is defined."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return "<unknown>"
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"


_CALL_IT = ("in a pipeline body, call the step itself (`{name}(...)`): each call is a node, and nodes that do not "
            "need each other run at the same time with --executor process (or dask).")
_SETTINGS = ("give retries, timeout and the like to @step(...) where the step is defined, and a call's node "
             "name with .alias(\"name\").")
#: Methods other orchestrators' tasks have (Prefect, Celery, ZenML), and this orchestrator's way of doing the same.
_PEER_METHODS = {
    "submit": _CALL_IT,
    "delay": _CALL_IT,
    "apply_async": _CALL_IT,
    "with_options": _SETTINGS,
    "configure": _SETTINGS,  # ZenML
}
_WAIT_FOR_HINT = (" A step runs after the steps whose outputs it takes: pass what it needs as an argument (a "
                  "step that writes a file returns its path, `-> Path`, for the next one to take).")
#: Methods of a future (Prefect's ``.result()`` and ``.wait()``) a placeholder is mistaken for.
_FUTURE_METHODS = frozenset({"result", "wait"})
_BRANCH_HINT = (" The steps a pipeline runs are fixed when it is built: decide inside a step that takes this "
                "output (it may return early, or return None), or make the choice a pipeline parameter "
                "(`-p deploy=true`) that the body tests.")
_SHOW_HINT = (" To see the value, print it inside a step (orch logs RUN:{node} shows what it printed) or read "
              "it after the run (run.steps['{node}'].output()); a node named after a value "
              "(step.alias(f\"fit_{{i}}\")) takes a value of the body, not an output.")


class Output:
    """A placeholder for one output of one node, handed out while tracing.

    It stands for a value that does not exist yet, so anything that would
    need the value (truth tests, iteration, arithmetic, formatting) raises an
    error that says to pass it to another step instead. The package's hot
    paths (building the DAG, keying a node) read the ``_node`` and ``_name``
    slots directly, without the properties' check for a running trace.
    """

    __slots__ = ("_name", "_node")

    def __init__(self, node: str, name: str) -> None:
        self._node = node
        self._name = name

    # `.node` and `.name` are the package's, read once the body has run. In a body they are the
    # user's words (`model.name` on a model a step returns): there, they would quietly be the node's
    # name or "out" instead of the value, so they fail as any other attribute of a placeholder.
    @property
    def node(self) -> str:
        """The name of the node this is an output of."""
        if _ACTIVE_TRACE.get() is not None:
            return self._unavailable_attribute("node")  # type: ignore[no-any-return]
        return self._node

    @node.setter
    def node(self, value: str) -> None:
        self._node = value  # a node renamed when a later call takes its name (Trace._renumber)

    @property
    def name(self) -> str:
        """The name of this output of its node: ``out``, or one of the step's ``outputs``."""
        if _ACTIVE_TRACE.get() is not None:
            return self._unavailable_attribute("name")  # type: ignore[no-any-return]
        return self._name

    def __repr__(self) -> str:
        return f"<output {self._name!r} of step {self._node!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Output):
            return (self._node, self._name) == (other._node, other._name)
        # `if df == None:` in a body would otherwise pick a branch on a value that does not exist yet.
        return self._unavailable()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self._node, self._name))

    def __iter__(self) -> Any:
        # `train, test = split(raw)` and `for x in xs:` in a body: the fix is several outputs or a map.
        if "." in self._node:
            return self._unavailable(use="is unpacked or iterated", hint=self._parts_hint(""))
        return self._unavailable(use="is unpacked or iterated", hint=self._parts_hint(
            "annotate its return `-> tuple[A, B]` or declare @step(outputs=(\"a\", \"b\"))")
            + " To call a step once per item, pass this output to that step's .map().")

    def __getitem__(self, key: object) -> Any:
        # `split(raw)[0]`, `stats(xs)["mean"]`: a part of a result is passed on as an output of its own.
        names = f"\"{key}\", ..." if isinstance(key, str) and key.isidentifier() else "\"a\", \"b\""
        return self._unavailable(use=f"is indexed ([{key!r}])", hint=self._parts_hint(
            f"declare @step(outputs=({names})) and return a dict with those keys (or a tuple), "
            "or index it inside the step that takes it"))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)  # protocol probes (copy, pickle, numpy) must see a plain miss
        return self._unavailable_attribute(attr, depth=2)

    def _unavailable_attribute(self, attr: str, depth: int = 2) -> Any:
        if attr.startswith("_") or file_kind(sys._getframe(depth).f_code.co_filename) != "user":
            return self._unavailable()  # a library's probe (pandas reads `._typ`): not the user's words
        if attr in _FUTURE_METHODS:
            # Prefect's `fut.result()`, `fut.wait()`: a placeholder is passed on as it is, not awaited.
            return self._unavailable(use=f"has `.{attr}()` called", hint=(
                " A step's output in a pipeline body is no future to wait for: pass it to the next step as it "
                f"is, and that step runs once step '{self._node}' has."))
        # `split(raw).train` on a dataclass a step returns.
        return self._unavailable(use=f"has its attribute `.{attr}` read", hint=self._parts_hint(
            f"declare @step(outputs=(\"{attr}\", ...)) and return a dict with those keys, "
            f"or read `.{attr}` inside the step that takes it"))

    def _parts_hint(self, how: str) -> str:
        """How to pass a part of this output to a step, or "" for an output that is already one of several."""
        if "." in self._node:  # `process.map`: a map over another step's output (a step's name has no dot)
            return self._map_hint()
        if self._name != SINGLE_OUTPUT:
            return ""
        return f" To pass its parts to steps one by one, give step '{self._node}' several outputs: {how}."

    def _map_hint(self) -> str:
        """How to use the result of a map over a step's output (Metaflow's join), whose items are not known yet."""
        trace = _ACTIVE_TRACE.get()
        call = next((c for c in trace.calls if c.name == self._node), None) if trace is not None else None
        over = f" over the output of step '{call.map_over._node}'" \
            if call is not None and call.map_over is not None else ""
        return (f" The result of {self._node}(){over} is the list of its items' results, made once that list "
                "is known: pass it whole to a step that takes a list, or map another step over it "
                "(`other.map(results)`).")

    def _unavailable(self, *_: object, use: str = "is used as a value", hint: str = "", **__: object) -> Any:
        trace = _ACTIVE_TRACE.get()
        if trace is None:
            # Not in a body being built (a thread it started, or after the build): "while the
            # pipeline is being built" would send the user looking in the wrong place.
            raise PipelineDefinitionError(
                f"the output of step '{self._node}' is used as a value at {user_site()}, outside the "
                "pipeline body that made it (in a thread the body started, after it was built, or in a step "
                "that got it inside an object the body passed). "
                "It stands for a value only in that body: pass it to a step there. After a run, "
                f"run.steps['{self._node}'].output() holds the value."
            )
        problem = (f"the output of step '{self._node}' {use} at {user_site()} while the "
                   "pipeline is being built, but it does not exist until the step runs. "
                   f"Pass it to another step and use it there.{hint}")
        if problem not in trace.problems:
            # Also kept for the build: a body that catches the error (`try: n = len(xs) except
            # Exception: n = 0`) would otherwise go on with a guess and build another pipeline.
            trace.problems.append(problem)
        raise PipelineDefinitionError(problem)

    # The uses a newcomer's habits lead to get their own words and the orchestrator's way of doing them.
    def __bool__(self) -> bool:
        return self._unavailable(use="is tested for truth (an `if`, `while`, `and`, `or` or `not`)",  # type: ignore[no-any-return]
                                 hint=_BRANCH_HINT)

    def __len__(self) -> int:
        return self._unavailable(use="has its len() taken", hint=(  # type: ignore[no-any-return]
            " To call a step once per item, pass this output to that step's .map() (one node per item, "
            "made once it has run); a count belongs in a step that takes it."))

    def __format__(self, spec: str) -> str:
        return self._unavailable(use="is formatted (an f-string or format())",
                                 hint=_SHOW_HINT.format(node=self._node))  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self._unavailable(use="is made text (str() or print())",
                                 hint=_SHOW_HINT.format(node=self._node))  # type: ignore[no-any-return]

    def _compared(self, *_: object) -> Any:
        return self._unavailable(use="is compared (`<`, `<=`, `>`, `>=`)", hint=_BRANCH_HINT)

    __contains__ = __setitem__ = __delitem__ = __reversed__ = _unavailable
    __int__ = __float__ = __complex__ = __index__ = __round__ = __trunc__ = __floor__ = __ceil__ = _unavailable
    __neg__ = __pos__ = __abs__ = __invert__ = _unavailable
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _unavailable
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _unavailable
    __pow__ = __rpow__ = __matmul__ = __rmatmul__ = __divmod__ = __rdivmod__ = _unavailable
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = _unavailable
    __lshift__ = __rlshift__ = __rshift__ = __rrshift__ = _unavailable
    __lt__ = __le__ = __gt__ = __ge__ = _compared
    __array_ufunc__ = __array_function__ = _unavailable  # numpy.log(out), numpy.mean(out)


class Outputs(tuple):  # type: ignore[type-arg]
    """The placeholders of one call of a step of several outputs, in order, and by name.

    Unpacked (``train, test = split(raw)``), indexed (``split(raw)[0]``) or, as
    Kedro's and Dagster's users write, read by name: ``split(raw).train`` or
    ``split(raw)["train"]``. Copied, pickled or filled with values it is a plain
    tuple, so a step given it whole gets a tuple, as before.
    """

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name == "index" or name == "count":  # an output so named wins over tuple's method of that name
            for out in tuple.__iter__(self):
                if out._name == name:
                    return out
        return tuple.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Output:
        if name.startswith("_"):
            raise AttributeError(name)  # protocol probes (copy, pickle) and tuple's own see a plain miss
        return self._named(name, AttributeError)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._named(key, KeyError)
        return tuple.__getitem__(self, key)

    def __reduce__(self) -> tuple[Any, ...]:
        return tuple, (tuple(self),)

    @staticmethod
    def _make(items: Any) -> tuple[Any, ...]:
        """The container ``containers.like`` fills with the outputs' values: a plain tuple."""
        return tuple(items)

    def _named(self, name: str, error: type[Exception]) -> Output:
        for out in self:
            if out._name == name:
                return out  # type: ignore[no-any-return]
        names = [out._name for out in self]
        problem = (f"step '{self[0]._node}' has no output '{name}' ({user_site()}); its outputs are "
                   f"{', '.join(names)}.{did_you_mean(name, names)}")
        if _ACTIVE_TRACE.get() is not None:
            raise PipelineDefinitionError(problem)
        raise error(problem)


@dataclass
class Call:
    """One recorded call of a step inside a pipeline body: a future DAG node."""

    name: str
    step: Step
    arguments: dict[str, Any]
    site: str
    outputs: tuple[Output, ...]
    map_over: Output | None = None  # a map over a step's output: expanded when that step is done
    in_map: str = ""  # an item of a map over a list the body holds: that map's name, for --rerun NAME.map


class _MapItem:
    """Stands for the item argument of a map until the items are known."""

    def __repr__(self) -> str:
        return "<map item>"


MAP_ITEM = _MapItem()


@dataclass
class Trace:
    """The calls recorded while one pipeline body runs, and the problems found."""

    calls: list[Call] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict)
    _numbered: dict[str, str] = field(default_factory=dict)  # a numbered name (fit_2) -> its step's name (fit)
    # id of a value the body passed -> [the value, the copy a call took, that copy's digest once known]
    _copies: dict[int, list[Any]] = field(default_factory=dict)

    def copy_of(self, value: Any) -> Any:
        """A copy of ``value`` for one call; the copy an earlier call took when the value has not changed.

        One array or object passed to many calls (``score.map(models, X)``, a
        step of a class body called on its object) is then held once, not once
        per call. Telling "unchanged" costs a hash of it, from the second call on.
        """
        held = self._copies.get(id(value))
        if held is not None and held[0] is value:
            try:
                if held[2] is None:
                    held[2] = hash_value(held[1])
                if hash_value(value) == held[2]:
                    return held[1]
            except UnhashableValueError:
                pass  # the build reports it
        copied = own_copy(value)
        self._copies[id(value)] = [value, copied, None]
        return copied

    def copy_digests(self) -> dict[int, tuple[Any, str]]:
        """The digests ``copy_of`` already took of the copies it handed to several calls, by id.

        Building the DAG hashes each call's arguments; a copy shared by many calls (one
        array given to every ``fit`` of a loop) is then hashed once there instead of once
        per call. The copy is held with its digest, so its id cannot be reused meanwhile.
        """
        return {id(held[1]): (held[1], held[2]) for held in self._copies.values() if held[2] is not None}

    def node_name(self, base: str, alias: str | None, site: str) -> str:
        """A unique node name: the step's name, then ``_2``, ``_3``… in call order.

        A name given on purpose (an ``.alias()``, or a step's own name at its
        first call) wins over a number given to repeated calls of another step:
        a step named ``fit_2`` is node ``fit_2`` whether it is called before or
        after the second call of ``fit``, which becomes ``fit_3``.
        """
        if alias is not None:
            if alias in self._numbered:
                self._renumber(alias)
            elif alias in self.names:
                holder = next((c for c in self.calls if c.name == alias), None)
                used = f" by the call of step '{holder.step.name}' at {holder.site}" if holder else ""
                self.problems.append(
                    f"step name '{alias}' at {site} is already used in this pipeline{used}. "
                    "Give each .alias() a different name."
                )
            self.names.add(alias)
            return alias
        if base in self._numbered:
            self._renumber(base)
            self._counts[base] = 1
            return base
        name = self._next(base)
        self.names.add(name)
        return name

    def _next(self, base: str) -> str:
        n = self._counts.get(base, 0)
        while True:
            n += 1
            name = base if n == 1 else f"{base}_{n}"
            if name not in self.names:
                break
        self._counts[base] = n
        if n > 1:
            self._numbered[name] = base
        return name

    def _renumber(self, name: str) -> None:
        """Give the call numbered ``name`` the next number of its step; ``name`` stays taken, for the caller."""
        base = self._numbered.pop(name)
        call = next(c for c in self.calls if c.name == name)
        call.name = self._next(base)
        self.names.add(call.name)
        for out in call.outputs:
            out.node = call.name  # the same placeholders later calls and the result hold


_ACTIVE_TRACE: contextvars.ContextVar[Trace | None] = contextvars.ContextVar(
    "orchestrator_trace", default=None
)


def active_trace() -> Trace | None:
    return _ACTIVE_TRACE.get()


class tracing:
    """Context manager that makes step calls record into ``trace``."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._token: contextvars.Token[Trace | None] | None = None

    def __enter__(self) -> Trace:
        self._token = _ACTIVE_TRACE.set(self.trace)
        return self.trace

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _ACTIVE_TRACE.reset(self._token)


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
        root = code_root(fn)
        if root is None:
            raise UserError(_not_a_function(fn))
        if inspect.isgeneratorfunction(root) or inspect.isasyncgenfunction(root):
            raise UserError(_a_generator(root, name))
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        self.fn = fn
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise UserError(f"step name {name!r} ({definition_site(root)}) is not a valid name. "
                            "Use letters, digits and underscores.")
        self.name: str = name or str(getattr(fn, "__name__", root.__name__))  # a partial has no name
        self.site = definition_site(root)
        written = _written_name(fn, root)
        if written is not None:
            self.name, self.site = name or written[0], written[1]
        self.retry = retry
        self.cache = cache
        self.version = None if version is None else str(version)
        self.untracked = untracked  # names of path constants the user says are not inputs (no warning)
        self.signature = inspect.signature(fn)
        self.output_names = _output_names(fn, outputs, self.name, self.site)
        plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in self.signature.parameters.values())
        self._simple_names: tuple[str, ...] | None = tuple(self.signature.parameters) if plain else None
        self._simple_defaults = {n: p.default for n, p in self.signature.parameters.items()
                                 if p.default is not p.empty}
        self.call_layout = _call_layout(self.signature)
        self.path_params = _path_parameters(fn, self.signature)

    if not typing.TYPE_CHECKING:  # a type checker still flags `fit.mapp(...)`: Step has no such attribute
        def __getattr__(self, attr: str) -> Any:
            # Reached only for a name a step does not have: a habit of another orchestrator gets its fix.
            habit = _PEER_METHODS.get(attr)
            if habit is None:
                raise AttributeError(f"'Step' object has no attribute '{attr}'")
            name = self.__dict__.get("name", "?")  # also reached before __init__ set it (unpickling)
            message = f"step '{name}' has no .{attr}() ({user_site()}): {habit.format(name=name)}"
            if _ACTIVE_TRACE.get() is not None:
                raise PipelineDefinitionError(message)
            raise AttributeError(message)

    def declared_type(self, output: str) -> str | None:
        """The return annotation of ``output`` if it rules out None (``-> list``), else None.

        None for no annotation, ``None``, ``Optional[...]``/``X | None``,
        ``Any`` and ``object``. The runner uses it, only when a step fails, to
        say that an input was None because its producer forgot to return.
        """
        annotation = self.signature.return_annotation
        if self.multiple_outputs:
            # Only a tuple[...] annotation names each output's type; outputs=(...) alone does not.
            elements = (_tuple_elements(annotation) or ()) if isinstance(annotation, str) \
                else typing.get_args(annotation)
            if len(elements) != len(self.output_names) or output not in self.output_names:
                return None
            annotation = elements[self.output_names.index(output)]
        return _never_none(annotation)

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
        trace = _ACTIVE_TRACE.get()
        if trace is None:
            if args or kwargs:
                _refuse_placeholders(self.name, args, kwargs)
            return self.fn(*args, **kwargs)
        # What the step's module binds its name to: a function wrapping the step itself is a
        # decorator written above @step.
        fn = self.fn
        wrapper = fn.__globals__.get(fn.__name__) if type(fn) is types.FunctionType else None
        if type(wrapper) is types.FunctionType and _wraps(wrapper, self) \
                and wrapper.__code__ is sys._getframe(1).f_code:
            problem = _decorated_above(self, wrapper)
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
        trace = _ACTIVE_TRACE.get()
        if trace is not None and not isinstance(items, Output):
            problem = _unordered_items(items, f"{alias or self.name}.map() ({call_site()})")
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
        trace.calls.append(Call(name=name, step=self, arguments=arguments, site=site, outputs=(output,),
                                map_over=items))
        return output

    def _record(self, trace: Trace, args: tuple[Any, ...], kwargs: dict[str, Any], alias: str | None) -> Any:
        site = call_site()
        name = trace.node_name(self.name, alias, site)
        arguments = _as_of_call(trace, self._bind(trace, args, kwargs, site), self, site)
        outputs = tuple(Output(name, out) for out in self.output_names)
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
        for pname, param in params.items():
            if pname not in bound.arguments and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                problems.append(
                    f"step '{self.name}' ({site}) is called without input '{pname}'. "
                    "Pass a step output or a value." + _wiring_hint(self, pname, trace)
                )
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


def _refuse_placeholders(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
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


class _Aliased(Generic[P, R]):
    """A step called under an explicit node name (``fit.alias("fit_small")``); also maps under it."""

    __slots__ = ("lead", "name", "step")

    def __init__(self, step: Step[P, R], name: str, lead: tuple[Any, ...] = ()) -> None:
        self.step, self.name, self.lead = step, name, lead  # lead: the instance of a step of a class body

    def __repr__(self) -> str:
        return f"<step {self.step.name!r} as {self.name!r} ({self.step.site})>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = _ACTIVE_TRACE.get()
        if trace is None:
            if args or kwargs:
                _refuse_placeholders(self.name, args, kwargs)
            return self.step.fn(*self.lead, *args, **kwargs)
        return self.step._record(trace, (*self.lead, *args), kwargs, alias=self.name)

    def map(self, items: Any, *args: Any, **kwargs: Any) -> list[R]:
        """Like ``Step.map``; the items are named ``NAME``, ``NAME_2``, …"""
        return self.step._map(items, args, kwargs, self.name, self.lead)


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


def _unordered_items(items: Any, where: str) -> str | None:
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
            warning that their files' content is not in the key.

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


def name_by_position_message(decorator: str, text: str) -> str:
    """Why ``@step("load")`` (Prefect's and Airflow's spelling) fails, and how to name it.

    The text would otherwise be taken for the function to decorate, and the
    user told that a name is not a function.
    """
    return (f"{decorator}({text!r}) ({call_site()}): a name is given by keyword, "
            f"{decorator}(name={text!r}).")


def iter_outputs(value: Any) -> Iterator[Output]:
    """Every ``Output`` placeholder inside ``value`` (nested lists, tuples, dicts)."""
    if isinstance(value, Output):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from iter_outputs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_outputs(item)


def _not_a_function(obj: Any) -> str:
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


def _written_name(fn: Callable[..., Any], root: types.FunctionType) -> tuple[str, str] | None:
    """The name the user's source gives a step whose function has a name of its own, and its ``file:line``.

    A lambda is named ``<lambda>``, and the function a decorator without
    ``functools.wraps`` returns, or a factory builds, has the name of that
    inner function (``inner``, ``wrapper``): each such step would be a node
    ``inner``, ``inner_2``... So, for those only, the line that applies
    ``@step`` is read: the ``def`` it decorates (``@step @logged def load``
    is ``load``) or the name it is assigned to (``double = step(lambda ...)``).
    A function named by ``functools.wraps``, a partial or a method keeps its name.
    """
    if fn is not root or not ("<locals>" in root.__qualname__ or root.__name__ == "<lambda>"):
        return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    filename, line = frame.f_code.co_filename, frame.f_lineno
    for node in ast.walk(_parsed(filename)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                and any(d.lineno == line for d in node.decorator_list):
            first = min(d.lineno for d in node.decorator_list)
            return node.name, f"{os.path.basename(filename)}:{first}"
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno == line \
                and isinstance(node.value, ast.Call):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                return targets[0].id, f"{os.path.basename(filename)}:{line}"
    return None


_PARSED: dict[tuple[str, int], ast.Module] = {}  # (file, hash of its text) -> its syntax tree


def _parsed(filename: str) -> ast.Module:
    """The syntax tree of a source file (an empty one without source), parsed once per content."""
    text = "".join(linecache.getlines(filename))
    key = (filename, hash(text))
    tree = _PARSED.get(key)
    if tree is None:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            tree = ast.Module(body=[], type_ignores=[])
        _PARSED[key] = tree
    return tree


def _wraps(wrapper: types.FunctionType, step: Step) -> bool:
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


def _decorated_above(step: Step, wrapper: types.FunctionType) -> str:
    """Why a decorator of the user's above ``@step`` is a mistake, and the fix.

    ``@timed @step def load`` wraps the step, not its function: the wrapper
    runs once while the pipeline is built (timing, logging or retrying
    nothing) and never when the step runs, so it quietly does not do its job.
    """
    decorator = wrapper.__code__.co_qualname.partition(".<locals>")[0]
    return (f"step '{step.name}' ({step.site}) is wrapped by `{decorator}` ({definition_site(wrapper)}), "
            f"written above @step: `{decorator}` runs while the pipeline is built, not when the step runs. "
            f"Put @step above @{decorator}.")


def _a_generator(fn: types.FunctionType, name: str | None) -> str:
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


def _call_layout(signature: inspect.Signature) -> tuple[tuple[str, str], ...] | None:
    """How to call the function with its bound arguments, or None when ``fn(**arguments)`` does.

    Bound arguments are a dict by parameter name. That dict cannot be passed
    as keywords to positional-only parameters, ``*args`` or ``**kwargs``
    (the call would get ``args=(...)`` as one keyword), so such a signature
    gets its parameters in order, each marked ``"pos"``, ``"*"``, ``"kw"``
    or ``"**"``, for ``task.call_arguments``. None for every other signature
    keeps their calls as cheap as a plain keyword call.
    """
    p = inspect.Parameter
    kinds = [param.kind for param in signature.parameters.values()]
    if not any(k in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD) for k in kinds):
        return None
    marks = {p.POSITIONAL_ONLY: "pos", p.POSITIONAL_OR_KEYWORD: "pos", p.VAR_POSITIONAL: "*",
             p.KEYWORD_ONLY: "kw", p.VAR_KEYWORD: "**"}
    return tuple((name, marks[kind]) for name, kind in zip(signature.parameters, kinds))


def _output_names(fn: Callable[..., Any], outputs: Sequence[str] | None, name: str, site: str) -> tuple[str, ...]:
    if outputs is not None:
        names = tuple(outputs)
        if isinstance(outputs, str) or not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise UserError(
                f"step '{name}' ({site}): outputs must be a tuple of names, e.g. outputs=(\"train\", \"test\")"
            )
        if len(set(names)) != len(names):
            raise UserError(f"step '{name}' ({site}): output names must be different: {names}")
        return names
    count = _tuple_arity(inspect.signature(fn).return_annotation, fn)
    if count is None:
        return (SINGLE_OUTPUT,)
    if count == -1:
        raise UserError(
            f"step '{name}' ({site}) returns tuple[..., ...] of unknown length. "
            "Annotate each element or declare outputs=(\"a\", \"b\")."
        )
    named = _annotated_names(inspect.signature(fn).return_annotation)
    if named is not None and len(named) == count and len(set(named)) == count:
        return named
    return tuple(f"out{i}" for i in range(count))


def _annotated_names(annotation: Any) -> tuple[str, ...] | None:
    """The output names of ``tuple[Annotated[A, "train"], Annotated[B, "test"]]`` (ZenML's way), else None.

    Each element must carry a name, a text that is an identifier, as the first
    text of its ``Annotated`` metadata; a tuple without them keeps ``out0``, ``out1``.
    """
    if isinstance(annotation, str):
        elements = _tuple_elements(annotation) or ()
        names = [_annotated_name_text(e) for e in elements]
    else:
        names = [next((m for m in getattr(e, "__metadata__", ()) if isinstance(m, str)), None)
                 for e in typing.get_args(annotation)] if typing.get_origin(annotation) is tuple else []
    if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
        return None
    return tuple(names)  # type: ignore[arg-type]


def _annotated_name_text(element: str) -> str | None:
    """``"train"`` of the text ``Annotated[list, "train"]``, else None."""
    try:
        expr = ast.parse(element, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(expr, ast.Subscript) and _annotation_name(expr.value) == "Annotated"
            and isinstance(expr.slice, ast.Tuple)):
        return None
    return next((e.value for e in expr.slice.elts[1:] if isinstance(e, ast.Constant) and isinstance(e.value, str)),
                None)


def _tuple_arity(annotation: Any, fn: Callable[..., Any]) -> int | None:
    """Number of elements of a ``tuple[...]`` return annotation, -1 if variadic, else None."""
    if annotation is inspect.Signature.empty:
        return None
    if isinstance(annotation, str):
        elements = _tuple_elements(annotation)
        if elements is None:
            return None
        return -1 if "..." in elements else len(elements)
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if Ellipsis in args:
            return -1
        return len(args) if args else None
    return None


_MAY_BE_NONE = frozenset({"None", "NoneType", "Any", "object", "Optional"})


def _never_none(annotation: Any) -> str | None:
    """``annotation`` as text if it is a type that excludes None, else None (see ``Step.declared_type``)."""
    if annotation is inspect.Signature.empty:
        return None
    if isinstance(annotation, str):  # ``from __future__ import annotations``: judge the text
        try:
            expr = ast.parse(annotation, mode="eval").body
        except SyntaxError:
            return None
        return None if _text_may_be_none(expr) else annotation
    if annotation is None or annotation is type(None) or annotation is Any or annotation is object \
            or isinstance(annotation, typing.TypeVar):
        return None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
            and type(None) in typing.get_args(annotation):
        return None
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def _text_may_be_none(expr: ast.expr) -> bool:
    """Whether an annotation's expression allows None: ``None``, ``Any``, ``X | None``, ``Optional[X]``..."""
    if isinstance(expr, ast.Constant):
        return expr.value is None or isinstance(expr.value, str)  # a quoted name: not judged
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return _text_may_be_none(expr.left) or _text_may_be_none(expr.right)
    if isinstance(expr, ast.Subscript):
        name = _annotation_name(expr.value)
        if name == "Union":
            elts = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
            return any(_text_may_be_none(e) for e in elts)
        return name == "Optional"
    return _annotation_name(expr) in _MAY_BE_NONE


def _tuple_elements(annotation: str) -> tuple[str, ...] | None:
    """The element annotations of ``"tuple[list, int]"`` as text; None if the text is no ``tuple[...]``."""
    try:
        expr = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(expr, ast.Subscript) and _annotation_name(expr.value) in ("tuple", "Tuple")):
        return None
    elts = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
    return tuple(ast.unparse(e) for e in elts)


def _annotation_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _path_parameters(fn: Callable[..., Any], signature: inspect.Signature) -> frozenset[str]:
    """Parameters annotated ``Path`` (or ``list[Path]``, ``Optional[Path]``...): their values are file inputs."""
    names = set()
    for pname, param in signature.parameters.items():
        ann = param.annotation
        if ann is inspect.Parameter.empty:
            continue
        # A generic alias (`dict[str, Path]`) has the __name__ of its origin alone: its text names the Path.
        text = ann if isinstance(ann, str) else ann.__name__ if isinstance(ann, type) else str(ann)
        if ann is not str and _PATH_WORD.search(text):
            names.add(pname)
    return frozenset(names)
