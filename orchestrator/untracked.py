"""Warnings about paths a step's code reaches as values, whose files the cache cannot see.

A path counts by its file's content only when it is a step parameter. A
path in a module constant (``DATA = Path("data.csv")``), a closure variable,
a helper's default value or an argument bound by ``functools.partial`` counts
by its text: editing the file leaves the step cached on a stale result.

Hashing such paths by content instead would be wrong as often as right: the
code does not say whether the step reads the path or writes it
(``OUT = Path("outputs")``, a log file it appends to), and a written path
would change on every run and re-run its step forever; a folder constant may
be huge. So each one is named in a warning, once per step and run, with the
fix: pass it as a parameter, where it counts by content and shows in
lineage, or name it in ``@step(untracked=...)`` when it is not an input.
This module reads no files and changes no keys.
"""

from __future__ import annotations

import re
import sys
import types
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.dag import DAG
    from orchestrator.report import RunObserver


class UntrackedPathWarning(UserWarning):
    """A step uses a path that is not one of its parameters: editing the file does not re-run it."""


def untracked_path_warnings(dag: DAG) -> list[str]:
    """One line per path value the pipeline's steps reach outside their parameters, naming those steps.

    A constant many steps use (``ROOT``) is one line, not one per step.
    """
    users: dict[tuple[str, str, str], list[str]] = {}
    for node in dag.nodes.values():
        step = node.step
        for found in node.code.paths:
            steps = users.setdefault(found, [])
            if step.name not in steps and not _opted_out(found[1], step.untracked):
                steps.append(step.name)
    return [_message(steps, *found) for found, steps in users.items() if steps]


def warn_untracked(dag: DAG, observer: RunObserver | None) -> None:
    """Tell the user of each untracked path: through ``observer``, or as a Python warning without one."""
    for message in untracked_path_warnings(dag):
        if observer is not None:
            observer.warning(message)
        else:
            warnings.warn(message, UntrackedPathWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this package: the user's ``p.run()`` line."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "orchestrator":
        frame, level = frame.f_back, level + 1
    return level


def _opted_out(name: str, untracked: frozenset[str]) -> bool:
    """Whether ``@step(untracked=...)`` names it: as shown (``helpers.DATA``) or by its last part."""
    return name in untracked or name.rpartition(".")[2] in untracked


def _message(steps: list[str], kind: str, name: str, path: str) -> str:
    if kind in ("module constant", "class attribute"):
        what, fix = f"{kind} `{name}`", f"`{_parameter_name(name)}: Path = {name}`"
    elif kind == "closure variable":
        what, fix = f"closure variable `{name}`", f"`{_parameter_name(name)}: Path`"
    else:  # a helper's default value (`read.path`), an argument bound by functools.partial
        what, fix = f"{kind} `{name}`", "a `Path` parameter"
    shown = [f"'{s}'" for s in steps[:_SHOWN]]
    if len(steps) > _SHOWN:
        shown.append(f"{len(steps) - _SHOWN} more")
    untracked = f"@step(untracked=\"{name.rpartition('.')[2]}\")"
    if len(steps) == 1:
        who, verb, it, opt_out = f"step {shown[0]}", "uses", shown[0], f"if {shown[0]} does not read it"
    else:
        who, verb, it, opt_out = f"steps {', '.join(shown[:-1])} and {shown[-1]}", "use", "them", \
            "to those that do not read it"
    return (f"{who} {verb} {what} = {path}: a path counts by its file's content only as a step parameter, "
            f"so editing {path} leaves {it} cached. Pass it as one ({fix}), or add {untracked} {opt_out}.")


_SHOWN = 3  # steps named in one warning; the rest are counted


def _parameter_name(name: str) -> str:
    """``data`` for ``DATA``, ``train_csv`` for ``helpers.TRAIN_CSV``: a parameter name to suggest."""
    last = name.rpartition(".")[2].lower()
    return last if re.fullmatch(r"[a-z_][a-z0-9_]*", last) else "path"
