"""Where in the user's files something is: the ``file.py:LINE`` that messages and records name.

A step call records its call site, and every one-line message about a
mistake names the line of the user's own code where it was made, not a
frame of this package or of a library. ``call_site`` runs once per step call
while a body is traced, so it stays cheap.
"""

from __future__ import annotations

import ast
import linecache
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from orchestrator.user_code import file_kind

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


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
        name = shown_file(filename)
        if not name.startswith("In["):  # a cell's file is In[N] of the cell run last with that text
            _BASENAMES[filename] = name
    return f"{name}:{frame.f_lineno}"


_BASENAMES: dict[str, str] = {}  # co_filename -> its base name: call_site runs once per step call


def shown_file(filename: str) -> str:
    """``filename`` as a message names it: its base name, or ``In[3]`` for the code of a notebook cell.

    A Jupyter kernel compiles each cell into a temporary file (``/tmp/ipykernel_1/3359560853.py``,
    ``<ipython-input-3-ad71f0ed3df1>`` in IPython): its name says nothing of which cell, where
    IPython's own tracebacks say ``In[3]``. IPython knows the number of the cell it compiled.
    """
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    if callable(get_ipython):
        code_name = getattr(getattr(get_ipython(), "compile", None), "format_code_name", None)
        try:
            cell = code_name(filename) if callable(code_name) else None
        except Exception:  # noqa: BLE001 - IPython's own lookup: any failure leaves the file's name
            cell = None
        if isinstance(cell, tuple) and len(cell) == 2 and isinstance(cell[1], str) and cell[1].startswith("In["):
            return cell[1]
    return os.path.basename(filename)


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
            return f"{shown_file(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return call_site() if fallback else ""


def definition_site(fn: Callable[..., Any]) -> str:
    """``file.py:LINE`` where ``fn`` is defined."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return "<unknown>"
    return f"{shown_file(code.co_filename)}:{code.co_firstlineno}"


def written_name(fn: Callable[..., Any], root: types.FunctionType) -> tuple[str, str] | None:
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
            return node.name, f"{shown_file(filename)}:{first}"
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno == line \
                and isinstance(node.value, ast.Call):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                return targets[0].id, f"{shown_file(filename)}:{line}"
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
