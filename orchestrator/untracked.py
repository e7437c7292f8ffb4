"""Warnings about paths a step's code reaches as values, whose files the cache cannot see,
and about modules it imports by a name known only when it runs, whose code it cannot see.

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
A step parameter given the path of a file as text (a catalog of paths from
``--params catalog.toml``, as Kedro's users keep one) is named too: annotated
``Path`` (or ``dict[str, Path]``), it would count by the file's content. This
module reads no files (it only asks whether such a text names one) and changes
no keys.
"""

from __future__ import annotations

import os
import re
import sys
import types
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.dag import DAG
    from orchestrator.report import RunObserver


class UntrackedPathWarning(UserWarning):
    """A step uses a path that is not one of its parameters: editing the file does not re-run it."""


def untracked_path_warnings(dag: DAG) -> list[str]:
    """One line per path value the pipeline's steps reach outside their parameters, naming those steps,
    and one per place they import a module named only when they run.

    A constant many steps use (``ROOT``) is one line, not one per step.
    ``importlib.import_module(f"plugins.{name}")`` or ``__import__(name)`` in a
    step or a helper it calls: which module's code runs is text, so that code
    is in no key, and editing it leaves the step cached.
    """
    users: dict[tuple[str, str, str], list[str]] = {}
    importers: dict[tuple[str, str], list[str]] = {}
    for node in dag.nodes.values():
        step = node.step
        for found in node.code.paths:
            steps = users.setdefault(found, [])
            if step.name not in steps and not _opted_out(found[1], step.untracked):
                steps.append(step.name)
        for place in node.code.dynamic:
            steps = importers.setdefault(place, [])
            if step.name not in steps and not _opted_out(place[0], step.untracked):
                steps.append(step.name)
    return [_message(steps, *found) for found, steps in users.items() if steps] + text_path_warnings(dag) \
        + [_dynamic_message(steps, *place) for place, steps in importers.items() if steps]


def _dynamic_message(steps: list[str], what: str, where: str) -> str:
    shown = [f"'{s}'" for s in steps[:_SHOWN]]
    if len(steps) > _SHOWN:
        shown.append(f"{len(steps) - _SHOWN} more")
    who = f"step {shown[0]}" if len(steps) == 1 else f"steps {', '.join(shown[:-1])} and {shown[-1]}"
    it = shown[0] if len(steps) == 1 else "them"
    return (f"{who} import{'s' if len(steps) == 1 else ''} a module named only at run time ({what} in "
            f"`{where}`): its code is in no key, so editing it leaves {it} cached. Import the modules and "
            f"pick from a dict ({{\"a\": plugins.a.run}}), or after an edit run with --rerun; "
            f"@step(untracked=\"{what.rpartition('.')[2]}\") silences this.")


def text_path_warnings(dag: DAG) -> list[str]:
    """One line per step parameter given the path of an existing file as text, not annotated as a path nor untracked.

    ``load(catalog)`` with ``catalog = {"raw": "data/raw.csv"}`` from a parameters
    file, or ``load("data.csv")``: the step gets text, so editing the file leaves it
    cached. Only text that looks like a path (it has a suffix or a folder) is looked
    up, a few hundred at most, and a few thousand texts are looked at, once per run.
    """
    found: dict[tuple[str, str], tuple[Any, list[tuple[str, str]]]] = {}
    budget = [_LOOKUPS, _TEXTS]
    for node in dag.nodes.values():
        if budget[0] <= 0 or budget[1] <= 0:
            break  # no more lookups, or texts, this run: the rest are left unsaid
        step = node.step
        for arg in node.params:
            value = node.arguments.get(arg)
            if type(value) in _NO_TEXT or arg in step.path_params or arg in step.untracked:
                continue
            if node.item_of is not None and arg == node.map_param:
                continue  # an item of a step's output: no text the user wrote

            files = [(where, text) for where, text in _texts(value, "", 0, budget) if _names_a_file(text, budget)]
            if files:
                known = found.setdefault((step.name, arg), (value, []))[1]
                known.extend(f for f in files if all(f[1] != k[1] for k in known))  # a file once, however many calls
    return [_text_message(step, arg, value, files) for (step, arg), (value, files) in found.items()]


def _text_message(step: str, arg: str, value: Any, files: list[tuple[str, str]]) -> str:
    where, text = files[0]
    shown = f"`{arg}{where}`" if where else f"`{arg}`"
    more = f" and {len(files) - 1} more file{'s' if len(files) > 2 else ''}" if len(files) > 1 else ""
    shape = "Path" if isinstance(value, str) else "dict[str, Path]" if isinstance(value, dict) else \
        "tuple[Path, ...]" if isinstance(value, tuple) else "list[Path]"
    return (f"step '{step}' takes {text!r} ({shown}){more} as text: a file counts by its content only as a path, "
            f"so editing {text} leaves '{step}' cached. Annotate the parameter `{arg}: {shape}` in '{step}' (text "
            f"given to it is then read as a path), or add @step(untracked=\"{arg}\") if '{step}' does not read it.")


_NO_TEXT = frozenset({int, float, bool, type(None), bytes})
_LOOKUPS = 200  # texts looked up as files per run: a grid of thousands of labels costs no more
_TEXTS = 5000  # texts looked at per run, in however many nodes and lists


def _texts(value: Any, where: str, depth: int, budget: list[int]) -> list[tuple[str, str]]:
    """(where, text) of each text in ``value``: itself, or in a dict, list or tuple a few levels deep."""
    if isinstance(value, str):
        budget[1] -= 1
        return [(where, value)]
    if depth > 3 or budget[1] <= 0:
        return []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return []
    keyed = isinstance(value, dict)
    out = []
    for key, item in items:
        if budget[1] <= 0:
            break
        if type(item) in _NO_TEXT:  # a number: skipped before its place is even written (a list of 50,000)
            continue
        out.extend(_texts(item, f"{where}[{key!r}]" if keyed else f"{where}[{key}]", depth + 1, budget))
    return out


def _names_a_file(text: str, budget: list[int]) -> bool:
    """Whether ``text`` looks like a path (a suffix or a folder in it) and names an existing file."""
    if not 0 < len(text) < 400 or "\n" in text or budget[0] <= 0:
        return False
    base = os.path.basename(text)
    if "." not in base.strip(".") and os.sep not in text:
        return False
    budget[0] -= 1
    try:
        return os.path.isfile(os.path.expanduser(text))
    except (OSError, ValueError):  # a NUL byte, a name too long
        return False


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
