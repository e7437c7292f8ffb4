"""Text that a step's annotation says is a path, inside a list, tuple or dict argument, read as a path.

A parameter annotated ``Path`` counts by its file's content even when it is
given text (``load("data.csv")``, a value from Python). The same holds for
the paths inside ``catalog: dict[str, Path]``, ``files: list[Path]`` or
``pair: tuple[Path, str]``: given text there (a catalog a notebook passes, as
Kedro's users keep one), each text the annotation calls a path is made one for
the key, so editing its file re-runs the step. Only the key sees the change;
the step gets its argument as it was passed. This module reads no files.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from orchestrator.type_hints import resolved_hints

_NONE = type(None)
_SEQUENCES = (list, set, frozenset, Sequence, typing.Sequence)
_MAPPINGS = (dict, Mapping, typing.Mapping)


def paths_in_text(step: Any, name: str, value: Any) -> Any:
    """``value`` (a list, tuple or dict argument ``name`` of ``step``) with the text its annotation calls a path made one.

    ``value`` itself when the annotation cannot be resolved or names no path there.
    """
    hints = step.__dict__.get("_path_hints")
    if hints is None:
        hints = resolved_hints(step.fn)  # one a type checker alone can resolve converts nothing
        step.__dict__["_path_hints"] = hints
    annotation = hints.get(name)
    return value if annotation is None else _as_paths(annotation, value, 0)


def _as_paths(annotation: Any, value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return PurePath(value) if isinstance(annotation, type) and issubclass(annotation, PurePath) else value
    if depth > 4:
        return value
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not _NONE]
        return _as_paths(kinds[0], value, depth) if len(kinds) == 1 else value
    if isinstance(value, dict) and origin in _MAPPINGS and len(args) == 2:
        return {key: _as_paths(args[1], item, depth + 1) for key, item in value.items()}
    if isinstance(value, tuple) and origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_as_paths(args[0], item, depth + 1) for item in value)
        if len(args) == len(value):
            return tuple(_as_paths(kind, item, depth + 1) for kind, item in zip(args, value))
        return value
    if isinstance(value, (list, tuple)) and origin in _SEQUENCES and len(args) == 1:
        return type(value)(_as_paths(args[0], item, depth + 1) for item in value)
    return value
