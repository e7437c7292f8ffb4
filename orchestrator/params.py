"""Pipeline parameters from the command line: ``-p name=value`` and ``--params FILE``.

Each text value is converted to the parameter's annotation, else to the type
of its default, else (``limit=None``) read as a JSON file would give it (``100``
is a number, ``rf`` text); a ``str`` stays raw text, and a container must be JSON of the
same kind (a list for ``list``/``tuple``/``set``, an object for ``dict``; a
``tuple[int, str]`` of that many items). A ``date`` or ``datetime`` is ISO 8601
text, an ``Enum`` member is named or given by its value, a dataclass is a JSON
object of its fields. Values from a file
already have a type; they get the same check (``3.7`` is not an ``int``,
``"3"`` not a number; a date may be a TOML date or an ISO string, since JSON
has no dates). A value that does not convert is a ``ParameterError`` naming
the parameter, the file if any, the expected type and the value.
"""

from __future__ import annotations

import dataclasses
import decimal
import inspect
import json
import numbers
import os
import re
import typing
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any

from orchestrator.errors import ParameterError, did_you_mean
from orchestrator.type_hints import resolved_hints

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_assignments(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["alpha=0.5", "path=x.csv"]`` → ``{"alpha": "0.5", "path": "x.csv"}``.

    A name given twice is refused: ``-p k=1 -p k=2`` was last-wins, so a pasted
    command line with a stale value ran with whichever came last, without a word.
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"-p {item!r} is not name=value. Write it like -p alpha=0.5.")
        name = name.strip()
        if name in out:
            raise ParameterError(f"parameter '{name}' is given twice (-p {name}={out[name]} and -p {item}). "
                                 "Keep the one you mean.")
        out[name] = value
    return out


def load_params_file(path: str) -> dict[str, Any]:
    """Parameters from a ``.toml``, ``.json`` or ``.yml``/``.yaml`` file (a table / object of name → value).

    YAML is what Kedro's ``conf/base/parameters.yml`` is written in; it is read
    with PyYAML's ``safe_load`` when PyYAML is installed (Dask installs it).
    """
    p = Path(os.path.expanduser(path))  # ``--params '~/p.toml'``, quoted, as a shell leaves it
    if not p.exists():
        # `--params alpha=0.5`: a parameter given to the option that takes a file of them
        hint = f" To set a parameter, write -p {path}; --params takes a file." if "=" in str(path) else ""
        raise ParameterError(f"parameters file {path} does not exist.{hint}")
    suffix = p.suffix.lower()  # `P.TOML`, as some tools and file systems write it
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        elif suffix == ".json":
            data = json.loads(p.read_text(), object_pairs_hook=_once_each)
        elif suffix in (".yml", ".yaml"):
            data = _yaml(p, path)
        else:
            raise ParameterError(f"parameters file {path} must end in .toml, .json, .yml or .yaml.")
    except (ValueError, OSError) as exc:
        raise ParameterError(f"cannot read parameters file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"parameters file {path} must hold a table of name = value.")
    return data


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (``{"alpha": 1, "alpha": 2}`` kept the last silently).

    TOML refuses a key given twice; JSON only advises against it, and a parameter
    set twice is a mistake in a file someone edits by hand.
    """
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} is given twice in one object")
        seen[key] = value
    return seen


def _yaml(p: Path, path: str) -> Any:
    """A YAML parameters file's value, read safely (no Python objects); its error as a ValueError."""
    try:
        import yaml
    except ImportError:
        raise ParameterError(f"parameters file {path} is YAML, which needs PyYAML: pip install pyyaml, "
                             "or write it as .toml or .json.") from None
    try:
        return yaml.load(p.read_text(), Loader=_yaml_loader(yaml))  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
        if problem and mark is not None:  # PyYAML's own text quotes the line over three more
            raise ValueError(f"{problem} (line {mark.line + 1}, column {mark.column + 1})") from None
        raise ValueError(" ".join(str(exc).split())) from None


_YAML_LOADER: list[Any] = []


def _yaml_loader(yaml: Any) -> Any:
    """PyYAML's safe loader, refusing a key given twice in one mapping, as TOML and ``_once_each`` do.

    PyYAML keeps the last value of a repeated key silently: ``alpha: 0.1`` and, further down
    the file someone edits by hand, ``alpha: 0.5`` ran with 0.5.
    """
    if not _YAML_LOADER:
        class OnceEach(yaml.SafeLoader):  # type: ignore[misc, name-defined]
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    # A merge (`<<: *defaults`) is not a key: what the mapping writes itself overrides it.
                    if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {key!r} is given twice in one mapping", key_node.start_mark)
                    seen.add(key)
                return super().construct_mapping(node, deep=deep)

        _YAML_LOADER.append(OnceEach)
    return _YAML_LOADER[0]


def pipeline_section(data: dict[str, Any], pipeline: str, signature: inspect.Signature) -> dict[str, Any]:
    """The values of a parameters file meant for ``pipeline``: its ``[pipeline]`` table over shared top-level values.

    One file may serve several pipelines (``conf/base.toml`` with ``[training]`` and
    ``[scoring]`` tables), as Kedro's parameter namespaces do. When the file has a table
    named after the pipeline, and the pipeline has no parameter of that name (the table
    would then be that parameter's value), the table's keys are the pipeline's
    parameters, each checked as usual, over the top-level values the pipeline has a
    parameter of (``seed = 1`` shared by every pipeline). The other tables and top-level
    values are other pipelines' and are left out. A file without such a table is read
    at its top level, every key checked, as before.
    """
    section = data.get(pipeline)
    params = signature.parameters
    if not isinstance(section, dict) or pipeline in params:
        return data
    shared = {name: value for name, value in data.items() if name in params}
    return {**shared, **section}


def convert_params(signature: inspect.Signature, fn: Any, pipeline: str,
                   texts: dict[str, str], typed: dict[str, Any] | None = None,
                   source: str | dict[str, str] | None = None) -> dict[str, Any]:
    """Convert CLI text values, and check file values, against the pipeline's parameter types.

    Args:
        texts: ``-p`` values, still text; they win over ``typed``.
        typed: values read from a parameters file (already JSON/TOML types).
        source: the file ``typed`` came from, named in error messages; or, with several
            files, the file each name's value came from.

    Raises:
        ParameterError: an unknown name, or a value that does not convert, all of them in one message.
    """
    params = signature.parameters
    hints = resolved_hints(fn)
    out: dict[str, Any] = {}
    problems = []
    for name, value in {**(typed or {}), **texts}.items():
        file = source.get(name) if isinstance(source, dict) else source
        param = params.get(name)
        if param is None:
            # A name ``**options`` takes: converted as one of them (``**options: int``), or guessed.
            param = next((p for p in params.values() if p.kind is p.VAR_KEYWORD), None)
        from_text = name in texts
        # Which of several layered files holds the mistake: the user has to find it to fix it.
        where = "" if from_text or not file else f" in {file}"
        if param is None:
            hint = did_you_mean(name, params)
            if not hint and not from_text and isinstance(value, dict) and set(value) & set(params):
                # A [section] of a TOML file (or a nested JSON object) holding the parameters.
                hint = (f" Its keys look like parameters: write them at the top level of {file}, not under "
                        f"[{name}], or name the table after the pipeline: [{pipeline}].")
            elif not hint and not from_text and isinstance(value, dict):
                # Kedro's `model_options:` group, which its nodes take as `params:model_options`.
                hint = (f" Here a pipeline's parameters are its function's arguments, each at the top level of "
                        f"{file}; to take the group '{name}' whole, give the pipeline a parameter of it "
                        f"(`{name}: dict`), or write its keys at the top level.")
            elif not hint and name.startswith("params:"):
                # Kedro's node input `params:alpha`, taken for the name of the parameter.
                bare = name.removeprefix("params:")
                hint = (f" Parameters are named without Kedro's 'params:' prefix: "
                        f"{'-p ' + bare + '=VALUE' if from_text else bare + ' in ' + str(file)}."
                        + (f" Its parameters: {', '.join(params) or 'none'}." if bare not in params else ""))
            problems.append(f"pipeline '{pipeline}' has no parameter '{name}'{where}.{hint}"
                            + ("" if hint else f" Its parameters: {', '.join(params) or 'none'}."))
            continue
        target = hints.get(param.name, param.annotation)
        declared = not (target is inspect.Parameter.empty or isinstance(target, str))
        if not declared:
            declared = param.default not in (inspect.Parameter.empty, None)
            target = type(param.default) if declared else str
        try:
            if from_text:
                out[name] = convert(value, target) if declared else guess(value)
            else:  # a file value has its type already: check it, as -p would, unless nothing declares one
                out[name] = check_value(value, target) if declared else value
        except _Mismatch as exc:
            problems.append(f"parameter '{name}'{where}: {exc}.")
        except (ValueError, TypeError, ArithmeticError) as exc:  # decimal.Decimal("abc") is arithmetic
            # ``Optional[int]`` failed as an int: say "to int", and show the whole annotation too.
            inner = _optional_of(target)
            why = _clip(_why(exc), 120) if inner is None else f"{_type_name(target)}: {_clip(_why(exc), 120)}"
            problems.append(f"parameter '{name}'{where}: cannot convert {_clip(repr(value))} to "
                            f"{_type_name(inner or target)} ({why}).")
    if problems:
        raise ParameterError("\n".join(problems))
    return out


class _Mismatch(ValueError):
    """A value of the wrong kind; the message reads "expected ..., got ..."."""


_CONTAINERS = (list, tuple, set, frozenset, dict)


_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?")


def guess(text: str) -> Any:
    """The value of ``-p`` text for a parameter nothing types (no annotation, default None).

    What a JSON parameters file would give: a number (``100``, ``0.5``, ``.5``, ``1e-3``),
    ``true``/``false``, a JSON list or object; anything else (``rf``, ``007``, ``2024-05-06``)
    stays text. Annotate the parameter (``limit: str | None = None``) to keep ``100`` as text.
    """
    stripped = text.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped) and not re.fullmatch(r"[+-]?0[0-9]+", stripped):
        return float(stripped)
    if stripped in ("true", "false"):
        return stripped == "true"
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return text


def convert(text: Any, target: Any) -> Any:
    """Convert ``text`` to ``target`` (a type or a typing construct)."""
    origin = typing.get_origin(target)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = typing.get_args(target)
        if type(None) in args and str(text).lower() in ("none", "null", ""):
            return None
        errors: list[Exception] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(text, arg)
            except (ValueError, TypeError) as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]  # ``X | None``: the text was meant as an X
        raise ValueError("; ".join(map(str, errors)))
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
        return _int_text(text)
    if target is float:
        return _float_text(text)
    if isinstance(target, type) and issubclass(target, Path):
        if not text:  # Path("") is Path("."): a forgotten value must not quietly mean this folder
            raise _Mismatch("empty path (write . for the current folder)")
        return _user_path(Path, text)
    if target in (datetime, date):
        return _from_iso(text, target, _clip(text))
    if isinstance(target, type) and issubclass(target, Enum):
        return _enum_member(text, target, _clip(text), from_text=True)
    if target in _CONTAINERS or origin in _CONTAINERS or dataclasses.is_dataclass(target) or _is_model(target):
        try:
            value = json.loads(text)
        except ValueError:
            raise _Mismatch(f"expected {_expected(origin or target)}, got {_clip(text)} (not JSON)") from None
        return check_value(value, target, shown=_clip(text))
    if isinstance(target, type):
        return target(text)
    return text


def _int_text(text: str) -> int:
    """``-p n=3`` as an int; a whole number written as a float (``3.0``, ``1e3``) too, as a file's ``3.0`` is."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    if _FLOAT.fullmatch(stripped):
        number = decimal.Decimal(stripped)
        if number == number.to_integral_value():
            return int(number)
        raise _Mismatch(f"expected an integer like 3, got {_text_shown(text)} (not a whole number)")
    raise _Mismatch(f"expected an integer like 3, got {_text_shown(text)}")


def _float_text(text: str) -> float:
    """``-p x=0.5`` as a float: Python's spellings (``1e-3``, ``inf``, ``nan``, ``1_000``), nothing else."""
    try:
        return float(text.strip())
    except ValueError:
        raise _Mismatch(f"expected a number like 0.5, got {_text_shown(text)}") from None


def _text_shown(text: str) -> str:
    """``-p`` text as a message shows it, as the other ``-p`` refusals do; an empty value by name."""
    return _clip(text) if text.strip() else "nothing (-p name=VALUE)"


def check_value(value: Any, target: Any, shown: str | None = None) -> Any:
    """``value`` (a JSON or TOML value) as ``target``, or ``_Mismatch`` if it is of another kind.

    As strict as ``-p``: an int parameter takes an int (or a float without a
    fraction), a float parameter an int or a float, a list a list; a bool is
    not a number and a string is not a number or a list.
    """
    got = shown if shown is not None else _shown(value)
    origin = typing.get_origin(target)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = typing.get_args(target)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return check_value(value, arg)
                except (ValueError, TypeError):
                    continue
        raise _Mismatch(f"expected {' or '.join(_expected(a) for a in args)}, got {got}")
    if origin is typing.Literal:
        choices = typing.get_args(target)
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        raise _Mismatch(f"expected one of {', '.join(map(str, choices))}, got {got}")
    kind = origin or target
    if kind is Any or kind is object or not isinstance(kind, type):
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif issubclass(kind, Path):
        if value == "":
            raise _Mismatch("empty path (write . for the current folder)")
        if isinstance(value, (str, Path)):
            return _user_path(kind, value)
    elif kind in (datetime, date):
        if isinstance(value, str):  # JSON has no dates: an ISO string stands for one
            return _from_iso(value, kind, got)
        if isinstance(value, kind) and not (kind is date and isinstance(value, datetime)):
            return value  # a TOML date or datetime; a datetime is a date to Python, but not to a step
        if kind is datetime and isinstance(value, date):  # a TOML date, as -p dt=2024-05-06 reads it
            return datetime(value.year, value.month, value.day)
    elif issubclass(kind, Enum):
        return _enum_member(value, kind, got)
    elif kind is dict:
        if isinstance(value, dict):
            args = typing.get_args(target)
            return {_key(k, args[0]): _item(v, args[1], k) for k, v in value.items()} if len(args) == 2 \
                else dict(value)
    elif kind in (list, tuple, set, frozenset):
        if isinstance(value, list):
            _check_length(value, target, got)
            items = [_item(v, _item_type(target, i), i) for i, v in enumerate(value)]
            return items if kind is list else kind(items)
    elif isinstance(value, kind):
        return value
    elif dataclasses.is_dataclass(kind):
        if isinstance(value, dict):
            return _dataclass_value(value, kind, got)
    elif _is_model(kind):
        if isinstance(value, dict):
            return _model_value(value, kind, got)
    else:
        make: Any = kind  # a class of the user's (an Enum, say) made from the value, as -p does from text
        try:
            return make(value)
        except (ValueError, TypeError, ArithmeticError) as exc:  # decimal.Decimal("abc") is arithmetic
            raise _Mismatch(f"expected {_expected(kind)}, got {got} ({_why(exc)})") from None
    raise _Mismatch(f"expected {_expected(kind)}, got {got}")


def _dataclass_value(value: dict[str, Any], kind: type, got: str) -> Any:
    """A dataclass built from a JSON object or TOML table of its fields, each checked against its type.

    ``Cfg("...")`` from the text would put the whole text in the first field,
    whatever its type: a run with a config that is not the one asked for.
    """
    fields = {f.name: f for f in dataclasses.fields(kind) if f.init}
    hints = resolved_hints(kind)
    for name in value:
        if name not in fields:
            raise _Mismatch(f"{_type_name(kind)} has no field {name!r}.{did_you_mean(name, fields)} "
                            f"Its fields: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _Mismatch(f"{_type_name(kind)} needs field{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)}, got {got}")
    checked = {}
    for name, item in value.items():
        try:
            checked[name] = check_value(item, hints.get(name, Any))
        except _Mismatch as exc:
            raise _Mismatch(f"field {name!r} of {_type_name(kind)}: {exc}") from None
    make: Any = kind
    try:
        return make(**checked)
    except (ValueError, TypeError, ArithmeticError) as exc:  # its __post_init__ refused the values
        raise _Mismatch(f"{_type_name(kind)} refused {got}: {_why(exc)}") from None


def _is_model(kind: Any) -> bool:
    """Whether ``kind`` is a pydantic model: a config class built from an object of its fields."""
    return isinstance(kind, type) and callable(getattr(kind, "model_validate", None)) \
        and isinstance(getattr(kind, "model_fields", None), dict)


def _model_fields(kind: Any) -> list[str]:
    """The names of a pydantic model's fields (what a JSON object of them holds)."""
    return list(kind.model_fields)


def _model_value(value: dict[str, Any], kind: Any, got: str) -> Any:
    """A pydantic model built from a JSON object or TOML table of its fields.

    ``Cfg(text)`` failed with ``BaseModel.__init__() takes 1 positional argument``;
    the model checks its own fields, and its refusal is the message.
    """
    fields = _model_fields(kind)
    unknown = [name for name in value if fields and name not in fields]
    if unknown:
        hint = did_you_mean(unknown[0], fields)
        raise _Mismatch(f"{_type_name(kind)} has no field {unknown[0]!r}.{hint} Its fields: {', '.join(fields)}")
    try:
        return kind.model_validate(value)
    except (ValueError, TypeError, ArithmeticError) as exc:  # pydantic's ValidationError is a ValueError
        raise _Mismatch(f"{_type_name(kind)} refused {got}: {_model_refusal(exc)}") from None


def _model_refusal(exc: Exception) -> str:
    """The first thing a model refused, on one line: pydantic's own message takes five lines and a URL."""
    try:
        first = exc.errors()[0]  # type: ignore[attr-defined]
        return f"field {'.'.join(map(str, first['loc']))!r}: {first['msg']}"
    except Exception:  # noqa: BLE001 - not pydantic's error, or another shape of it: its message
        return _clip(_why(exc), 200)


def _why(exc: Exception) -> str:
    """An exception's message; ``decimal.Decimal("abc")`` says only ``[<class 'decimal.ConversionSyntax'>]``."""
    return "not a number" if isinstance(exc, ArithmeticError) else str(exc) or type(exc).__name__


def _user_path(kind: Any, text: str | Path) -> Path:
    """A path as a shell would have given it: ``~/data`` is in the home folder.

    A shell expands ``~`` only at the start of a word, so ``-p 'path=~/data'``
    and a parameters file keep it. Left as it is, it names a folder ``~`` here,
    which does not exist: the step would run every time as one that makes its
    file, while pandas, which expands it, reads a file the key does not cover.
    """
    # os.path's, unlike Path.expanduser, leaves ``~nosuchuser`` as it is, as a shell does.
    path: Path = kind(os.path.expanduser(text))
    return path


def _from_iso(text: str, kind: type[date], got: str) -> Any:
    """An ISO 8601 ``date`` or ``datetime``; a ``datetime`` also takes a bare date (midnight)."""
    try:
        return kind.fromisoformat(text.strip())
    except ValueError:
        raise _Mismatch(f"expected {_expected(kind)}, got {got}") from None


def _enum_member(value: Any, kind: type[Enum], got: str, from_text: bool = False) -> Enum:
    """The member of ``kind`` whose value is ``value``, else whose name is ``value``.

    Text from ``-p`` is also converted to each member's value type first, so
    that ``-p level=2`` finds ``Level.HIGH = 2`` of an ``IntEnum``.
    """
    try:
        return kind(value)
    except (ValueError, TypeError):
        pass
    if isinstance(value, str) and value in kind.__members__:
        return kind[value]
    # Only numbers (bools too) have a text form that convert() reads without guessing.
    numbers = [m for m in kind if isinstance(m.value, (int, float))] if from_text else []
    for member in numbers:
        try:
            if convert(value, type(member.value)) == member.value:
                return member
        except (ValueError, TypeError):
            continue
    names = ", ".join(member.name for member in kind)
    raise _Mismatch(f"expected a {_type_name(kind)} name, one of {names} (or its value), got {got}")


def _check_length(value: list[Any], target: Any, got: str) -> None:
    """``tuple[int, str]`` takes exactly two items; ``tuple[int, ...]`` and ``list[int]`` any number."""
    args = typing.get_args(target)
    if typing.get_origin(target) is not tuple or not args or (len(args) == 2 and args[1] is Ellipsis):
        return
    if len(value) != len(args):
        types = ", ".join(_type_name(a) for a in args)
        raise _Mismatch(f"expected a JSON list of {len(args)} items ({types}), got {got} "
                        f"({len(value)} item{'' if len(value) == 1 else 's'})")


def _item(value: Any, target: Any, where: int | str) -> Any:
    try:
        return check_value(value, target)
    except _Mismatch as exc:
        raise _Mismatch(f"item {where!r}: {exc}") from None


def _key(key: Any, target: Any) -> Any:
    """A key of ``dict[K, V]`` as K: JSON and TOML keys are text, so ``{"1": 0.5}`` is ``{1: 0.5}``
    for ``dict[int, float]``, as ``-p`` converts text (a recorded run's ``{date: ...}`` comes back too)."""
    if not isinstance(key, str):
        return check_value(key, target)
    try:
        return convert(key, target)
    except _Mismatch as exc:
        raise _Mismatch(f"key {key!r}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise _Mismatch(f"key {key!r}: expected {_expected(target)}") from exc


def _item_type(target: Any, index: int) -> Any:
    """The type of item ``index`` of ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]`` (``Any`` if unsaid)."""
    args = typing.get_args(target)
    if not args:
        return Any
    if len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    if typing.get_origin(target) is tuple:
        return args[index] if index < len(args) else Any
    return args[0]


def _expected(kind: Any) -> str:
    """How a kind of value is asked for in a message: "an integer like 3"."""
    origin = typing.get_origin(kind) or kind
    names = {bool: "true or false", int: "an integer like 3", float: "a number like 0.5", str: "a string",
             dict: 'a JSON object like {"a": 1}', type(None): "null",
             datetime: "an ISO 8601 date and time like 2024-05-06T10:11:12",
             date: "an ISO 8601 date like 2024-05-06"}
    if origin in names:
        return names[origin]
    if origin in (list, tuple, set, frozenset):
        return "a JSON list like [1, 2]"
    if isinstance(origin, type) and issubclass(origin, Path):
        return "a path (a string)"
    if dataclasses.is_dataclass(origin) or _is_model(origin):
        field_names = [f.name for f in dataclasses.fields(origin) if f.init] if dataclasses.is_dataclass(origin) \
            else _model_fields(origin)
        fields = ", ".join(f'"{name}": ...' for name in field_names)
        return f"a JSON object of {_type_name(origin)}'s fields like {{{fields}}}"
    return f"a {_type_name(kind)}"


def _shown(value: Any) -> str:
    """A typed value as a message shows it: as JSON, on one short line (a TOML date or time as in the file)."""
    if isinstance(value, (date, time)):
        return value.isoformat()
    try:
        return _clip(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        return _clip(repr(value))


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _optional_of(target: Any) -> Any:
    """``X`` of ``Optional[X]`` / ``X | None``, else ``None``."""
    origin = typing.get_origin(target)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(target) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(target)) == 2:
            return args[0]
    return None


def _type_name(target: Any) -> str:
    """``int``, ``Color``; a typing construct in full: ``Optional[int]``, ``list[int]``."""
    if typing.get_origin(target) is not None:
        return str(target).replace("typing.", "")
    return getattr(target, "__name__", str(target))



def python_value_problem(annotation: Any, value: Any) -> str | None:
    """What is wrong with ``value`` passed from Python for a parameter so annotated, or None.

    ``-p`` converts text to the annotation before a run sees it, so only a
    Python caller passes ``n="4"``, ``day="2024-05-06"`` or ``color="BLUE"``
    (read from ``sys.argv``, an environment variable or a config dict), which
    a step would take as text: ``"0.5" * 2`` is ``"0.50.5"``, ``"false"`` is
    true, ``"2024-05-06" < date(2024, 6, 1)`` raises, ``color is Color.BLUE``
    is false. A value outside a ``Literal``'s choices is refused whatever its
    type. Text for a ``str``, a path or an unannotated parameter is fine.
    Returns the end of a message: "is annotated int, but got the text '4'. Pass an int: int('4')".
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if any(value == c and type(value) is type(c) for c in choices):
            return None
        return f"is one of {', '.join(map(repr, choices))}, but got {_clip(repr(value))}"
    if isinstance(value, dict):
        # A config's fields as a dict (from a JSON file, a notebook): the step would read `cfg.lr` of a dict.
        kind = next((k for k in _without_none(annotation) if dataclasses.is_dataclass(k) or _is_model(k)), None)
        if kind is None or isinstance(value, kind):
            return None
        return (f"is annotated {_type_name(kind)}, but got a dict. Pass {_type_name(kind)}(**{_clip(repr(value))}) "
                "(-p and --params build it from an object of its fields)")
    if not isinstance(value, str):
        return _number_problem(annotation, value)
    kinds = _without_none(annotation)
    if not kinds or any(_takes_text(kind) for kind in kinds):
        return None
    fix = _fix_for_text(kinds[0], value)
    return f"is annotated {_type_name(annotation)}, but got the text {_clip(repr(value))}. {fix}"


def _number_problem(annotation: Any, value: Any) -> str | None:
    """A number or flag passed for a kind it is not, which Python lets through and ``-p`` refuses, or None.

    ``n=3.7`` for an ``int`` ran with a float (and ``--params-from`` that run then
    refused it), ``flag=1`` for a ``bool``, ``alpha=True`` for a ``float``, ``depths=3``
    for a list. A whole float (``3.0``) is an int's value, as in a parameter file;
    numbers of other libraries (numpy's) count by what they are.
    """
    if value is None or isinstance(value, Enum):
        return None
    kinds = [typing.get_origin(k) or k for k in _without_none(annotation)]
    if not kinds or not all(isinstance(k, type) for k in kinds):
        return None
    if any(isinstance(value, k) for k in kinds if k is not int or not isinstance(value, bool)):
        return None  # True is an int to Python, not to a parameter annotated int
    flag = isinstance(value, bool) or type(value).__name__ == "bool_"
    number = isinstance(value, numbers.Real) and not flag
    shown = f"is annotated {_type_name(annotation)}, but got {_clip(repr(value))}"
    for kind in kinds:
        if kind is int and number and float(value).is_integer():
            return None
        if kind is float and number:
            return None
    if bool in kinds and number:
        return f"{shown}. Pass True or False"
    if int in kinds and number:
        return f"{shown}, which is not whole. Pass an int: round({_clip(repr(value))}) or int(...)"
    if (int in kinds or float in kinds) and flag:
        return f"{shown}, a flag. Pass a number"
    if any(issubclass(k, (list, tuple, set, frozenset)) for k in kinds) and (number or flag):
        return f"{shown}. Pass a {_type_name(kinds[0])}: [{_clip(repr(value))}]"
    return None


def _without_none(annotation: Any) -> list[Any]:
    """The kinds an annotation allows, ``None`` left out: ``[int]`` for ``Optional[int]``."""
    if typing.get_origin(annotation) is typing.Union or str(typing.get_origin(annotation)) == \
            "<class 'types.UnionType'>":
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


# Kinds text is refused for: what -p converts text to, and a step would misuse as text.
_NOT_TEXT = (bool, int, float, date, datetime, list, tuple, set, frozenset, dict)


def _takes_text(kind: Any) -> bool:
    """Whether text is a fair value of ``kind`` (``str``, a path, anything unsaid or unknown)."""
    if isinstance(kind, str):  # an annotation that did not resolve: only the plain names are known
        return kind not in ("int", "float", "bool")
    if typing.get_origin(kind) is typing.Literal:
        return any(isinstance(c, str) for c in typing.get_args(kind))
    base = typing.get_origin(kind) or kind
    if not isinstance(base, type):
        return True
    if issubclass(base, Enum):
        return False
    return not issubclass(base, _NOT_TEXT)


def _fix_for_text(kind: Any, text: str) -> str:
    """How to pass the value the text stands for: "Pass an int: int('4')", "Pass Color.BLUE"."""
    if isinstance(kind, str):
        kind = {"int": int, "float": float, "bool": bool}[kind]
    base = typing.get_origin(kind) or kind
    if base is bool:
        return "Pass True or False"
    if base in (int, float):
        return f"Pass {'an' if base is int else 'a'} {base.__name__}: {base.__name__}({text!r})"
    if base in (date, datetime):
        return f"Pass a {base.__name__}: {base.__name__}.fromisoformat({text!r})"
    if issubclass(base, Enum):
        try:
            member = _enum_member(text, base, text, from_text=True)
        except _Mismatch:
            return f"Pass a member: {', '.join(f'{base.__name__}.{m.name}' for m in base)}"
        return f"Pass {base.__name__}.{member.name}"
    return f"Pass a {base.__name__}, not its text"


def paths_beside_the_file(signature: inspect.Signature, values: dict[str, Any], file: str) -> list[str]:
    """A warning for each relative path parameter found beside the pipeline file, or at the project root, but not here.

    A relative path is read from the current folder, as every program reads
    it. Run from another folder (``orch run proj/train.py``, or ``cd pipelines &&
    orch run train.py`` in a project whose data sits at its root), a default such as
    ``Path("data")`` then names nothing, and a step that globs it or checks
    ``exists()`` quietly works on no data. When the path does exist beside
    the pipeline file, or at the root of the project (the folder of the pyproject.toml
    whose ``[tool.orchestrator]`` table chose the store), that is almost surely what
    was meant: say so, with both fixes.
    """
    from orchestrator.project import find_project

    try:
        here = os.getcwd()
    except FileNotFoundError:  # the current folder was deleted: no relative path names anything
        return []
    places: list[tuple[str, str]] = []
    out = []
    for name, param in signature.parameters.items():
        value = values.get(name, param.default)
        paths = [value] if isinstance(value, Path) else \
            [v for v in value if isinstance(v, Path)] if isinstance(value, (list, tuple)) else []
        if paths and not places:  # looked up once, and only for a pipeline that takes paths
            places.append((os.path.dirname(os.path.abspath(file)), f"beside {os.path.basename(file)}"))
            project = find_project()
            if project is not None:
                places.append((os.fspath(project.folder), f"at the project root ({project.file.name})"))
        found = next(((path, folder, where) for path in paths for folder, where in places
                      if folder != here and not path.is_absolute() and not path.exists()
                      and (Path(folder) / path).exists()), None)
        if found is not None:
            path, folder, where = found
            there = os.path.relpath(Path(folder) / path)
            fix = f"pass -p {name}={there}" if value is path else f"give its paths from here ({there}, ...)"
            out.append(f"parameter '{name}' is {path}, which is not in the current folder {here} but is "
                       f"{where}: run from {os.path.relpath(folder)}, or {fix}")
    return out


def options_like_parameters(signature: inspect.Signature, pipeline: str, values: dict[str, Any]) -> list[str]:
    """A warning for each given name that ``**options`` took but that is close to a named parameter.

    ``**options`` takes any name, so a misspelt ``-p alpah=2`` is no error: the
    run goes on with the default ``alpha``, and nothing says so. A name close to
    none of them (``max_depth`` for a model's options) is what ``**options`` is for.
    """
    params = signature.parameters
    options = next((p.name for p in params.values() if p.kind is p.VAR_KEYWORD), None)
    if options is None:
        return []
    named = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    out = []
    for name in values:
        hint = "" if name in params else did_you_mean(name, named)
        if hint:
            out.append(f"'{name}' is not a parameter of pipeline '{pipeline}': it goes into **{options}.{hint}")
    return out
