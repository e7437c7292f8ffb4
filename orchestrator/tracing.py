"""The tracing of a pipeline body: the calls it records and the placeholders it hands out.

While a ``@pipeline`` body runs, each step call records a ``Call`` in the
active ``Trace`` and returns ``Output`` placeholders (an ``Outputs`` tuple for
a step of several outputs) that later calls take as inputs. A placeholder
stands for a value that does not exist yet: anything that would need the value
fails with one line that says what to do instead. This module knows nothing of
graphs, stores or execution.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.errors import PipelineDefinitionError, UnhashableValueError, did_you_mean
from orchestrator.handover import own_copy
from orchestrator.hashing import hash_value
from orchestrator.sites import user_site
from orchestrator.user_code import file_kind

if TYPE_CHECKING:
    from orchestrator.step import Step

SINGLE_OUTPUT = "out"

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
        if ACTIVE_TRACE.get() is not None:
            return self._unavailable_attribute("node")  # type: ignore[no-any-return]
        return self._node

    @node.setter
    def node(self, value: str) -> None:
        self._node = value  # a node renamed when a later call takes its name (Trace._renumber)

    @property
    def name(self) -> str:
        """The name of this output of its node: ``out``, or one of the step's ``outputs``."""
        if ACTIVE_TRACE.get() is not None:
            return self._unavailable_attribute("name")  # type: ignore[no-any-return]
        return self._name

    # `isinstance(raw, pd.DataFrame)` in a body asks the placeholder's `__class__` once its type is not the
    # class asked about, and the answer (Output) picked a branch without a word. The user's own words fail as
    # `if raw:` does; the package's and libraries' checks (pickle, copy, pandas) still see an Output.
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        if ACTIVE_TRACE.get() is not None and file_kind(sys._getframe(1).f_code.co_filename) == "user":
            return self._unavailable(use="has its type tested (isinstance())",  # type: ignore[no-any-return]
                                     hint=_BRANCH_HINT)
        return type(self)

    # `hash(raw)` or `repr(raw)` in a body gave a number or a text made from the node's name, which a
    # step then took as the data's: a key that never changes with the data. The package's own dicts,
    # a library's logging and a traceback's display still get them.
    def __repr__(self) -> str:
        if ACTIVE_TRACE.get() is not None and file_kind(sys._getframe(1).f_code.co_filename) == "user":
            return self._unavailable(use="is made text (repr())",  # type: ignore[no-any-return]
                                     hint=_SHOW_HINT.format(node=self._node))
        return f"<output {self._name!r} of step {self._node!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Output):
            return (self._node, self._name) == (other._node, other._name)
        # `if df == None:` in a body would otherwise pick a branch on a value that does not exist yet.
        return self._unavailable()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        # Only the user's own `hash(raw)`: a set or a dict key of placeholders (`{a, b}`) stays theirs to use.
        if ACTIVE_TRACE.get() is not None and _calls_builtin(sys._getframe(1), "hash"):
            return self._unavailable(use="is hashed (hash())", hint=(  # type: ignore[no-any-return]
                " A hash of the data is taken inside a step that takes this output; the orchestrator already "
                "keys each step by the content of its inputs."))
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
        trace = ACTIVE_TRACE.get()
        call = next((c for c in trace.calls if c.name == self._node), None) if trace is not None else None
        over = f" over the output of step '{call.map_over._node}'" \
            if call is not None and call.map_over is not None else ""
        return (f" The result of {self._node}(){over} is the list of its items' results, made once that list "
                "is known: pass it whole to a step that takes a list, or map another step over it "
                "(`other.map(results)`).")

    def _unavailable(self, *_: object, use: str = "is used as a value", hint: str = "", **__: object) -> Any:
        trace = ACTIVE_TRACE.get()
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


def _calls_builtin(frame: Any, name: str) -> bool:
    """Whether ``frame`` is the user's code, stopped at a call written ``name(...)`` (``hash(raw)``).

    Told by the call's own source text, since ``hash(raw)`` and ``seen.add(raw)`` are the
    same instruction to the interpreter.
    """
    import dis
    import linecache

    code = frame.f_code
    if file_kind(code.co_filename) != "user" or not dis.opname[code.co_code[frame.f_lasti]].startswith("CALL"):
        return False
    line, end_line, column, end_column = list(code.co_positions())[frame.f_lasti // 2]
    if line is None or line != end_line or column is None:
        return False
    return linecache.getline(code.co_filename, line)[column:end_column].startswith(f"{name}(")


class ByName(tuple):  # type: ignore[type-arg]
    """A step's several outputs, in order and by name: ``outs.train`` and ``outs["train"]`` beside ``outs[0]``.

    What ``Outputs`` (placeholders, in a run's body) and ``direct_call.OutputValues``
    (values, in a body called as a function) share; each says how a name is found
    (``_named``). Copied or pickled it is a plain tuple.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)  # protocol probes (copy, pickle) and tuple's own see a plain miss
        return self._named(name, AttributeError)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._named(key, KeyError)
        return tuple.__getitem__(self, key)

    def __reduce__(self) -> tuple[Any, ...]:
        return tuple, (tuple(self),)

    def _named(self, name: str, error: type[Exception]) -> Any:
        raise NotImplementedError


class Outputs(ByName):
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
        if ACTIVE_TRACE.get() is not None:
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
    # id() of each placeholder handed out: an argument equal to one is `id(raw)` passed on (check_ids)
    output_ids: dict[int, Output] = field(default_factory=dict)

    def hand_out(self, outputs: tuple[Output, ...]) -> None:
        """Remember the placeholders of a new call, so that an ``id()`` of one passed to a step is found."""
        for out in outputs:
            self.output_ids[id(out)] = out

    def check_ids(self, arguments: dict[str, Any], step: str, site: str) -> None:
        """Record a problem for each argument that is the ``id()`` of a placeholder of this build.

        ``id(raw)`` is the placeholder's address in this process, not anything of the data: a
        step given it would be keyed by a number that changes with every build, without a word.
        """
        for name, value in arguments.items():
            out = self.output_ids.get(value) if type(value) is int else None
            if out is not None:
                self.problems.append(
                    f"step '{step}' at {site} is given id() of the output of step '{out._node}' as '{name}': a "
                    "placeholder's id() is an address in this build, not the value's, which does not exist yet. "
                    "Pass the output itself, and take what you need of it inside the step.")

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


ACTIVE_TRACE: contextvars.ContextVar[Trace | None] = contextvars.ContextVar(
    "orchestrator_trace", default=None
)


def active_trace() -> Trace | None:
    return ACTIVE_TRACE.get()


class tracing:
    """Context manager that makes step calls record into ``trace``."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._token: contextvars.Token[Trace | None] | None = None

    def __enter__(self) -> Trace:
        self._token = ACTIVE_TRACE.set(self.trace)
        return self.trace

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        ACTIVE_TRACE.reset(self._token)


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
