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
    """One line per (step, path value) the pipeline's steps reach outside their parameters."""
    messages: list[str] = []
    said: set[tuple[str, str]] = set()
    for node in dag.nodes.values():
        step = node.step
        for kind, name, path in node.code.paths:
            if (step.name, name) in said or _opted_out(name, step.untracked):
                continue
            said.add((step.name, name))
            messages.append(_message(step.name, kind, name, path))
    return messages


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


def _message(step: str, kind: str, name: str, path: str) -> str:
    if kind in ("module constant", "class attribute"):
        what, fix = f"{kind} `{name}`", f"`{_parameter_name(name)}: Path = {name}`"
    elif kind == "closure variable":
        what, fix = f"closure variable `{name}`", f"`{_parameter_name(name)}: Path`"
    else:  # a helper's default value (`read.path`), an argument bound by functools.partial
        what, fix = f"{kind} `{name}`", "a `Path` parameter"
    return (f"step '{step}' uses {what} = {path}: a path counts by its file's content only as a step parameter, "
            f"so editing {path} leaves '{step}' cached. Pass it as one ({fix}), or add "
            f"@step(untracked=\"{name.rpartition('.')[2]}\") if '{step}' does not read it.")


def _parameter_name(name: str) -> str:
    """``data`` for ``DATA``, ``train_csv`` for ``helpers.TRAIN_CSV``: a parameter name to suggest."""
    last = name.rpartition(".")[2].lower()
    return last if re.fullmatch(r"[a-z_][a-z0-9_]*", last) else "path"
