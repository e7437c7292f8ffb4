"""Pipeline parameters from the command line: ``-p name=value`` and ``--params FILE``.

Each text value is converted to the parameter's annotation, else to the type
of its default; a ``str`` stays raw text. A value that does not convert is a
``ParameterError`` naming the parameter, the expected type and the value.
"""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Any

from orchestrator.errors import ParameterError, did_you_mean

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_assignments(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["alpha=0.5", "path=x.csv"]`` → ``{"alpha": "0.5", "path": "x.csv"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"-p {item!r} is not name=value. Write it like -p alpha=0.5.")
        out[name.strip()] = value
    return out


def load_params_file(path: str) -> dict[str, Any]:
    """Parameters from a ``.toml`` or ``.json`` file (a table / object of name → value)."""
    p = Path(path)
    if not p.exists():
        raise ParameterError(f"parameters file {path} does not exist.")
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        elif p.suffix == ".json":
            data = json.loads(p.read_text())
        else:
            raise ParameterError(f"parameters file {path} must end in .toml or .json.")
    except (ValueError, OSError) as exc:
        raise ParameterError(f"cannot read parameters file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"parameters file {path} must hold a table of name = value.")
    return data


def convert_params(signature: inspect.Signature, fn: Any, pipeline: str,
                   texts: dict[str, str], typed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Convert CLI text values (and file values) to the pipeline's parameter types.

    Raises:
        ParameterError: an unknown name, or a value that does not convert.
    """
    params = signature.parameters
    hints = _type_hints(fn)
    out: dict[str, Any] = {}
    problems = []
    for name, value in {**(typed or {}), **texts}.items():
        param = params.get(name)
        if param is None:
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                out[name] = value
                continue
            hint = did_you_mean(name, params)
            problems.append(f"pipeline '{pipeline}' has no parameter '{name}'.{hint}"
                            + ("" if hint else f" Its parameters: {', '.join(params) or 'none'}."))
            continue
        target = hints.get(name, param.annotation)
        if target is inspect.Parameter.empty or isinstance(target, str):
            target = type(param.default) if param.default not in (inspect.Parameter.empty, None) else str
        try:
            out[name] = convert(value, target) if isinstance(value, str) or name in texts else value
        except (ValueError, TypeError) as exc:
            problems.append(f"parameter '{name}': cannot convert {value!r} to {_type_name(target)} ({exc}).")
    if problems:
        raise ParameterError("\n".join(problems))
    return out


def convert(text: Any, target: Any) -> Any:
    """Convert ``text`` to ``target`` (a type or a typing construct)."""
    origin = typing.get_origin(target)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = typing.get_args(target)
        if type(None) in args and str(text).lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(text, arg)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        for choice in typing.get_args(target):
            if str(choice) == str(text):
                return choice
        raise ValueError(f"choose one of {', '.join(map(str, typing.get_args(target)))}")
    if not isinstance(text, str):
        return text
    if target is str or target is Any:
        return text
    if target is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected true or false")
    if target is int:
        return int(text.strip())
    if target is float:
        return float(text.strip())
    if isinstance(target, type) and issubclass(target, Path):
        return Path(text)
    if target in (list, dict, tuple) or origin in (list, dict, tuple):
        value = json.loads(text)
        kind = origin or target
        return tuple(value) if kind is tuple else kind(value)
    if isinstance(target, type):
        return target(text)
    return text


def _type_hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations fall back to the raw ones
        return {}


def _type_name(target: Any) -> str:
    return getattr(target, "__name__", str(target))
