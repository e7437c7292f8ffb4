"""Why a step of a class body fails on an attribute another of its steps sets on ``self`` (Metaflow's habit).

In a Metaflow flow one step sets ``self.items`` and the next reads it. Here
each call of a step of a class body runs on its own copy of the object (taken
when the body called it, and pickled to a worker on a pool), so what one step
sets on ``self`` never reaches another, and the reader fails with an
``AttributeError``. This module is read only then, on the failure path: it
finds the step that sets the attribute and says how to pass the value instead.
When the reader does not fail (``__init__`` set ``self.items = []``, which it
then reads as it was), ``self_state_warnings`` names the pair when the
pipeline is built, once per run: only steps of a class body are read.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from orchestrator.code_analysis import first_argument_attributes
from orchestrator.fingerprint import code_root

if TYPE_CHECKING:
    from orchestrator.dag import DAG
    from orchestrator.retry import Failure
    from orchestrator.step import Step

_MISSING = re.compile(r"'(\w+)' object has no attribute '(\w+)'")


def self_state_hint(failed: str, failure: Failure, steps: Callable[[], Iterable[Step]]) -> str:
    """`` (step 'start' sets self.items, ...)`` when ``failed`` lacks an attribute one of ``steps()`` sets; else ""."""
    if failure.type_name != "AttributeError":
        return ""
    match = _MISSING.search(failure.message)
    if match is None:
        return ""
    owner, attr = match.groups()
    for step in steps():
        fn = code_root(step.fn)
        if fn is None or fn.__qualname__.rpartition(".")[0].rpartition(".")[2] != owner:
            continue
        if _sets_on_self(fn, attr):
            return (f" (step '{step.name}' sets self.{attr}, but what a step sets on self does not reach another "
                    f"step: each runs on its own copy of the object. Return {attr} from '{step.name}' and pass it "
                    f"to '{failed}' as an argument.)")
    return ""


def self_state_warnings(dag: DAG) -> list[str]:
    """One line per attribute a step of a class body sets on ``self`` and another step of that class reads."""
    methods = [(step, fn) for step, fn in _class_steps(dag)]
    if len(methods) < 2:
        return []
    out = []
    for writer, wfn in methods:
        for attr in sorted(_self_assignments(wfn)):
            readers = [step.name for step, fn in methods if step is not writer
                       and fn.__qualname__.rpartition(".")[0] == wfn.__qualname__.rpartition(".")[0]
                       and attr in (first_argument_attributes(fn) or ())]
            if readers:
                out.append(f"step '{writer.name}' sets self.{attr}, which step '{readers[0]}' reads: each step runs "
                           f"on its own copy of the object, so '{readers[0]}' never sees what '{writer.name}' set. "
                           f"Return {attr} from '{writer.name}' and pass it to '{readers[0]}' as an argument.")
    return out


def _class_steps(dag: DAG) -> list[tuple[Step, Any]]:
    """The pipeline's steps that are methods of a class (a qualname ``Flow.start``), each once, with their function."""
    found: list[tuple[Step, Any]] = []
    for step in {id(node.step): node.step for node in dag.nodes.values()}.values():
        fn = code_root(step.fn)
        parent = getattr(fn, "__qualname__", "").rpartition(".")[0].rpartition(".")[2]
        if parent and parent != "<locals>":
            found.append((step, fn))
    return found


def _sets_on_self(fn: object, attr: str) -> bool:
    """Whether ``fn``'s source assigns ``self.<attr>`` (``self`` being its first parameter)."""
    return attr in _self_assignments(fn)


def _self_assignments(fn: Any) -> frozenset[str]:
    """The attributes ``fn``'s source assigns on its first parameter (``self.items = ...``), memoized per code."""
    code = getattr(fn, "__code__", None)
    known = _ASSIGNED.get(code) if code is not None else None
    if known is not None:
        return known
    found: set[str] = set()
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        first = next(iter(inspect.signature(fn).parameters))
    except (OSError, TypeError, ValueError, SyntaxError, StopIteration):
        tree, first = None, ""
    for node in ast.walk(tree) if tree is not None else ():
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        found.update(t.attr for t in targets if isinstance(t, ast.Attribute)
                     and isinstance(t.value, ast.Name) and t.value.id == first)
    result = frozenset(found)
    if code is not None:
        _ASSIGNED[code] = result
    return result


_ASSIGNED: dict[Any, frozenset[str]] = {}  # code object -> attributes it assigns on self
