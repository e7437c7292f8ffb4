"""What a step's signature and annotations declare: its outputs, its file inputs, how to call it.

Read once, when ``@step`` wraps a function: the names of its outputs (a
``tuple[...]`` return annotation, ``Annotated`` names, or ``outputs=``), the
parameters annotated as paths (file inputs, hashed by content), the layout a
call needs for positional-only, ``*args`` and ``**kwargs`` parameters, and
whether an output is declared never to be None. Annotations written as text
(``from __future__ import annotations``) are judged by their syntax, never evaluated.
"""

from __future__ import annotations

import ast
import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.errors import UserError
from orchestrator.tracing import SINGLE_OUTPUT

_PATH_WORD = re.compile(r"\b(Path|PosixPath|WindowsPath)\b")


def call_layout(signature: inspect.Signature) -> tuple[tuple[str, str], ...] | None:
    """How to call the function with its bound arguments, or None when ``fn(**arguments)`` does.

    Bound arguments are a dict by parameter name. That dict cannot be passed
    as keywords to positional-only parameters, ``*args`` or ``**kwargs``
    (the call would get ``args=(...)`` as one keyword), so such a signature
    gets its parameters in order, each marked ``"pos"``, ``"*"``, ``"kw"``
    or ``"**"``, for ``task.call_arguments``. None for every other signature
    keeps their calls as cheap as a plain keyword call.
    """
    p = inspect.Parameter
    kinds = [param.kind for param in signature.parameters.values()]
    if not any(k in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD) for k in kinds):
        return None
    marks = {p.POSITIONAL_ONLY: "pos", p.POSITIONAL_OR_KEYWORD: "pos", p.VAR_POSITIONAL: "*",
             p.KEYWORD_ONLY: "kw", p.VAR_KEYWORD: "**"}
    return tuple((name, marks[kind]) for name, kind in zip(signature.parameters, kinds))


def output_names(fn: Callable[..., Any], outputs: Sequence[str] | None, name: str, site: str) -> tuple[str, ...]:
    if outputs is not None:
        names = tuple(outputs)
        if isinstance(outputs, str) or not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise UserError(
                f"step '{name}' ({site}): outputs must be a tuple of names, e.g. outputs=(\"train\", \"test\")"
            )
        if len(set(names)) != len(names):
            raise UserError(f"step '{name}' ({site}): output names must be different: {names}")
        return names
    count = _tuple_arity(inspect.signature(fn).return_annotation, fn)
    if count is None or count == -1:
        # `-> tuple[int, ...]`: a tuple of any length is one value, as a list is (several outputs are
        # `-> tuple[A, B]` or outputs=("a", "b")).
        return (SINGLE_OUTPUT,)
    named = _annotated_names(inspect.signature(fn).return_annotation)
    if named is not None and len(named) == count and len(set(named)) == count:
        return named
    return tuple(f"out{i}" for i in range(count))


def _annotated_names(annotation: Any) -> tuple[str, ...] | None:
    """The output names of ``tuple[Annotated[A, "train"], Annotated[B, "test"]]`` (ZenML's way), else None.

    Each element must carry a name, a text that is an identifier, as the first
    text of its ``Annotated`` metadata; a tuple without them keeps ``out0``, ``out1``.
    """
    if isinstance(annotation, str):
        elements = tuple_elements(annotation) or ()
        names = [_annotated_name_text(e) for e in elements]
    else:
        names = [next((m for m in getattr(e, "__metadata__", ()) if isinstance(m, str)), None)
                 for e in typing.get_args(annotation)] if typing.get_origin(annotation) is tuple else []
    if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
        return None
    return tuple(names)  # type: ignore[arg-type]


def _annotated_name_text(element: str) -> str | None:
    """``"train"`` of the text ``Annotated[list, "train"]``, else None."""
    try:
        expr = ast.parse(element, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(expr, ast.Subscript) and _annotation_name(expr.value) == "Annotated"
            and isinstance(expr.slice, ast.Tuple)):
        return None
    return next((e.value for e in expr.slice.elts[1:] if isinstance(e, ast.Constant) and isinstance(e.value, str)),
                None)


def _tuple_arity(annotation: Any, fn: Callable[..., Any]) -> int | None:
    """Number of elements of a ``tuple[...]`` return annotation, -1 if variadic, else None."""
    if annotation is inspect.Signature.empty:
        return None
    if isinstance(annotation, str):
        elements = tuple_elements(annotation)
        if elements is None:
            return None
        return -1 if "..." in elements else len(elements)
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if Ellipsis in args:
            return -1
        return len(args) if args else None
    return None


_MAY_BE_NONE = frozenset({"None", "NoneType", "Any", "object", "Optional"})


def never_none(annotation: Any) -> str | None:
    """``annotation`` as text if it is a type that excludes None, else None (see ``Step.declared_type``)."""
    if annotation is inspect.Signature.empty:
        return None
    if isinstance(annotation, str):  # ``from __future__ import annotations``: judge the text
        try:
            expr = ast.parse(annotation, mode="eval").body
        except SyntaxError:
            return None
        return None if _text_may_be_none(expr) else annotation
    if annotation is None or annotation is type(None) or annotation is Any or annotation is object \
            or isinstance(annotation, typing.TypeVar):
        return None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
            and type(None) in typing.get_args(annotation):
        return None
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def _text_may_be_none(expr: ast.expr) -> bool:
    """Whether an annotation's expression allows None: ``None``, ``Any``, ``X | None``, ``Optional[X]``..."""
    if isinstance(expr, ast.Constant):
        return expr.value is None or isinstance(expr.value, str)  # a quoted name: not judged
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return _text_may_be_none(expr.left) or _text_may_be_none(expr.right)
    if isinstance(expr, ast.Subscript):
        name = _annotation_name(expr.value)
        if name == "Union":
            elts = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
            return any(_text_may_be_none(e) for e in elts)
        return name == "Optional"
    return _annotation_name(expr) in _MAY_BE_NONE


def tuple_elements(annotation: str) -> tuple[str, ...] | None:
    """The element annotations of ``"tuple[list, int]"`` as text; None if the text is no ``tuple[...]``."""
    try:
        expr = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(expr, ast.Subscript) and _annotation_name(expr.value) in ("tuple", "Tuple")):
        return None
    elts = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
    return tuple(ast.unparse(e) for e in elts)


def _annotation_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def path_parameters(fn: Callable[..., Any], signature: inspect.Signature) -> frozenset[str]:
    """Parameters annotated ``Path`` (or ``list[Path]``, ``Optional[Path]``...): their values are file inputs."""
    names = set()
    for pname, param in signature.parameters.items():
        ann = param.annotation
        if ann is inspect.Parameter.empty:
            continue
        # A generic alias (`dict[str, Path]`) has the __name__ of its origin alone: its text names the Path.
        text = ann if isinstance(ann, str) else ann.__name__ if isinstance(ann, type) else str(ann)
        if ann is not str and _PATH_WORD.search(text):
            names.add(pname)
    return frozenset(names)
