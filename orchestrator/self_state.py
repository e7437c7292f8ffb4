"""Why a step of a class body fails on an attribute another of its steps sets on ``self`` (Metaflow's habit).

In a Metaflow flow one step sets ``self.items`` and the next reads it. Here
each call of a step of a class body runs on its own copy of the object (taken
when the body called it, and pickled to a worker on a pool), so what one step
sets on ``self`` never reaches another, and the reader fails with an
``AttributeError``. This module is read only then, on the failure path: it
finds the step that sets the attribute and says how to pass the value instead.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from orchestrator.fingerprint import code_root

if TYPE_CHECKING:
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


def _sets_on_self(fn: object, attr: str) -> bool:
    """Whether ``fn``'s source assigns ``self.<attr>`` (``self`` being its first parameter)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))  # type: ignore[arg-type]
        first = next(iter(inspect.signature(fn).parameters))  # type: ignore[arg-type]
    except (OSError, TypeError, ValueError, SyntaxError, StopIteration):
        return False
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr == attr \
                    and isinstance(target.value, ast.Name) and target.value.id == first:
                return True
    return False
