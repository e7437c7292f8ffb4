"""Code fingerprints of step functions.

A step's fingerprint covers its own code and, transitively, every function,
class and module-level constant of the *user's* code that it reaches: by
global name, through an imported user module (``helpers.clean``), through a
local import, a closure cell or a default argument. Installed packages
count by distribution version (``pkg:scikit-learn``); the standard library,
builtins and this package count for nothing.

Code is compared as a normalized AST (no docstrings, no decorators on the
step, no names of the step, no line numbers), so formatting-only edits and
moves keep the digest. The digest never contains file paths, module names
or object ids: the same code imported as ``pipelines.training`` or run as
``__main__`` fingerprints the same.

This module must not run user code beyond the imports a step's own local
``import`` statements would run anyway, and must not import numpy, pandas or
pyarrow. Values are hashed by ``hashing.hash_value``; this module only
decides which values and which code take part.
"""

from __future__ import annotations

import ast
import dis
import functools
import importlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator import hashing
from orchestrator.errors import UnhashableValueError

_OWN_PACKAGE = __name__.partition(".")[0]
_OWN_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "")
_FIX = "Make it a step parameter or a constant that can be pickled."
_ATTRIBUTE_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_TRANSPARENT_OPS = frozenset({"EXTENDED_ARG", "CACHE", "NOP"})
_MAX_COMPILED = 32  # module sources kept compiled for the staleness check
_MISSING = object()
_CONTAINERS = (list, tuple, set, frozenset, dict)
_STRUCTURAL = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    type,
    functools.partial,
    staticmethod,
    classmethod,
)


@dataclass(frozen=True)
class CodeFingerprint:
    """The digest of a step's code and everything it reaches, with a digest per part.

    ``parts`` maps a display name (``"<self>"``, ``"helpers.clean_text"``,
    ``"THRESHOLD"``, ``"pkg:scikit-learn"``) to that part's digest, or to
    the version for packages; it exists to explain why a digest changed.
    """

    digest: str
    parts: dict[str, str] = field(hash=False)


def fingerprint(fn: Callable[..., Any]) -> CodeFingerprint:
    """Fingerprint a step function, a ``Step``, a bound method or a ``functools.partial``.

    Raises:
        UnhashableValueError: A constant, closure variable or default value
            that the code uses cannot be hashed.
        TypeError: ``fn`` is not one of the supported callables.
    """
    walk = _Walk()
    root = _unwrap(fn)
    extras: list[tuple[str, object]] = []
    while isinstance(root, (types.MethodType, functools.partial)):
        if isinstance(root, types.MethodType):
            extras.append(("bound instance", root.__self__))
            root = _unwrap(root.__func__)
        else:
            extras.append(("partial arguments", (root.args, root.keywords)))
            root = _unwrap(root.func)
    if not isinstance(root, types.FunctionType):
        raise TypeError(f"fingerprint() takes a function or a step, not {type(fn).__qualname__}")
    walk.root_module = root.__module__
    for label, value in extras:
        walk.add_part(
            f"<self> {label}", f"<self> {label}", walk.token(value, label, root.__qualname__)
        )
    walk.function(root, is_root=True)
    return walk.result()


def is_user_module(module: types.ModuleType | str) -> bool:
    """Tell whether a module is the user's code: not stdlib, not installed, not this package."""
    if isinstance(module, str):
        loaded = sys.modules.get(module)
        if loaded is None:
            return _kind_of_unloaded(module) == "user"
        module = loaded
    return _module_kind(module) == "user"


# -- where code comes from -----------------------------------------------------------------


@functools.cache
def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(installed-package directories, standard-library directories), resolved."""
    paths = sysconfig.get_paths()
    installed = {paths["purelib"], paths["platlib"]}
    try:
        import site

        installed.update(site.getsitepackages())
        installed.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site.py lacks these
        pass
    stdlib = {paths["stdlib"], os.path.dirname(os.__file__)}

    def norm(dirs: set[str]) -> tuple[str, ...]:
        return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)

    return norm(installed), norm(stdlib)


@functools.cache
def _path_kind(path: str) -> str:
    real = os.path.realpath(path)
    installed, stdlib = _library_dirs()
    parts = real.split(os.sep)
    # Installed packages first: a virtualenv's site-packages sits inside its stdlib-like tree.
    if "site-packages" in parts or "dist-packages" in parts or real.startswith(installed):
        return "installed"
    if real.startswith(stdlib):
        return "stdlib"
    if real.startswith(_OWN_DIR):
        return "orchestrator"
    return "user"


@functools.cache
def _installed_top(path: str) -> str:
    """The top-level import name of an installed file: ``.../site-packages/torch/x.py`` -> torch."""
    parts = os.path.realpath(path).split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[len(parts) - parts[::-1].index(marker) :]
            if rest:
                return rest[0].removesuffix(".py").partition(".")[0]
    return ""


def _kind_of_name(name: str, file: str | None) -> str:
    top = name.partition(".")[0]
    if top == _OWN_PACKAGE:
        return "orchestrator"
    if file:
        return _path_kind(file)
    if name in sys.builtin_module_names or top in sys.stdlib_module_names:
        return "stdlib"
    return "user"  # made with types.ModuleType or exec, or an interactive __main__


_KINDS: dict[str, tuple[types.ModuleType, str]] = {}


def _module_kind(module: types.ModuleType) -> str:
    cached = _KINDS.get(module.__name__)
    if cached is not None and cached[0] is module:
        return cached[1]
    kind = _kind_of_name(module.__name__, getattr(module, "__file__", None))
    _KINDS[module.__name__] = (module, kind)
    return kind


def _kind_of_unloaded(name: str) -> str:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None and spec.has_location else None
    return _kind_of_name(name, origin)


def _kind_of_object(obj: Any) -> tuple[str, str]:
    """(kind, top-level module name) of where a function, class or builtin is defined."""
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType) and os.path.isabs(code.co_filename):
        # Where the code lives, not __module__: functools.wraps copies the wrapped function's
        # __module__ onto a library's wrapper, which must not pass for the user's code.
        kind = _path_kind(code.co_filename)
        if kind != "installed":
            return kind, ""
        top = _installed_top(code.co_filename)
        if top:
            return kind, top
    name = getattr(obj, "__module__", None)
    if name is None:
        owner = getattr(obj, "__self__", None)  # builtin methods such as math.sqrt
        if isinstance(owner, types.ModuleType):
            return _module_kind(owner), owner.__name__.partition(".")[0]
        globals_ = getattr(obj, "__globals__", None)
        if isinstance(globals_, dict) and "__name__" in globals_:
            found = globals_["__name__"]
            return _kind_of_name(found, globals_.get("__file__")), found.partition(".")[0]
        return ("user" if isinstance(obj, types.FunctionType) else "stdlib"), ""
    module = sys.modules.get(name)
    if module is not None:
        return _module_kind(module), name.partition(".")[0]
    globals_ = getattr(obj, "__globals__", None)
    file = globals_.get("__file__") if isinstance(globals_, dict) else None
    return _kind_of_name(name, file), name.partition(".")[0]


@functools.cache
def _distributions() -> dict[str, list[str]]:
    import importlib.metadata  # deferred: scanning installed distributions is slow to import

    return dict(importlib.metadata.packages_distributions())


@functools.cache
def _package_versions(top: str) -> tuple[tuple[str, str], ...]:
    """Return ("pkg:<distribution>", version) pairs for an installed top-level module.

    Cached for the life of the process: an upgrade on disk does not change the
    modules this process already imported.
    """
    import importlib.metadata

    found = []
    for dist in sorted(set(_distributions().get(top, ()))):
        try:
            found.append((f"pkg:{dist}", importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            continue
    if not found:
        version = getattr(sys.modules.get(top), "__version__", "unknown")
        found.append((f"pkg:{top}", str(version)))
    return tuple(found)


# -- code analysis, cached per code object ---------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """A reference found in bytecode: a root, then attribute names read from it.

    ``root`` is ``("global", name)`` or ``("import", module, level, top_only)``;
    ``binding`` marks the name bound by a local ``from m import x``, which
    counts only when it is not a module (uses of a module are followed
    through its attributes instead).
    """

    root: tuple[Any, ...]
    attrs: tuple[str, ...]
    binding: bool = False


@dataclass(frozen=True)
class _CodeInfo:
    digest: str
    refs: tuple[_Ref, ...]


# Keyed by id() with the object kept alive in the value, so an id is never reused while its
# entry exists. Code objects compare equal by content across files; identity keeps the
# source-or-bytecode decision of one function from leaking into another.
_CODE_INFO: dict[int, tuple[types.CodeType, _CodeInfo]] = {}
_CLASS_INFO: dict[int, tuple[type, tuple[int, ...], str, tuple[tuple[Any, _Ref], ...]]] = {}
_COMPILED: dict[tuple[str, str], dict[str, list[types.CodeType]]] = {}


def _function_info(fn: types.FunctionType) -> _CodeInfo:
    code = fn.__code__
    cached = _CODE_INFO.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    digest = None
    if code.co_name != "<lambda>":  # getsource gives a lambda's whole line: use its bytecode
        digest = _source_digest(fn, (code,), ast.FunctionDef, ast.AsyncFunctionDef)
    info = _CodeInfo(digest or _code_digest(code), tuple(sorted(_scan(code, {}), key=repr)))
    _CODE_INFO[id(code)] = (code, info)
    return info


def _scan(code: types.CodeType, local_roots: dict[str, _Ref]) -> Iterator[_Ref]:
    """Yield the globals, module attributes and local imports a code object reads."""
    local_roots = dict(local_roots)  # nested code sees the enclosing imports through cells
    chain: list[Any] | None = None  # [root ref, attribute names...] being read
    recent: list[Any] = [None, None]  # the last two constants: an import's level and fromlist
    importing: _Ref | None = None  # the module of the import statement being run
    pending: _Ref | None = None  # what the next STORE_* binds, during an import
    for ins in dis.get_instructions(code):
        op = ins.opname
        if op in _TRANSPARENT_OPS:
            continue
        if chain is not None and op in _ATTRIBUTE_OPS:
            chain.append(ins.argval)
            continue
        if chain is not None:
            yield _Ref(chain[0].root, chain[0].attrs + tuple(chain[1:]))
            chain = None
        if op in ("LOAD_GLOBAL", "LOAD_NAME"):
            chain = [_Ref(("global", ins.argval), ())]
        elif op.startswith("LOAD_FAST") or op in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
            name = ins.argval[-1] if isinstance(ins.argval, tuple) else ins.argval
            if name in local_roots:
                chain = [local_roots[name]]
        elif op in ("LOAD_CONST", "LOAD_SMALL_INT"):
            recent = [recent[1], ins.argval]
        elif op == "IMPORT_NAME":
            level, fromlist = recent
            importing = pending = _Ref(("import", ins.argval, level or 0, fromlist is None), ())
        elif op == "IMPORT_FROM" and importing is not None:
            if importing.root[3]:  # "import a.b.c as m" walks down from the top package
                pending = _Ref(importing.root, (pending or importing).attrs + (ins.argval,))
            else:  # "from m import x": a binding, followed unless it is a module
                pending = _Ref(importing.root, (ins.argval,))
                yield _Ref(importing.root, (ins.argval,), binding=True)
        elif op == "IMPORT_STAR" and importing is not None:
            yield _Ref(importing.root, ())  # every name of the module may be used
        elif op.startswith("STORE_") and pending is not None:
            local_roots[ins.argval] = pending
            pending = None
    if chain is not None:
        yield _Ref(chain[0].root, chain[0].attrs + tuple(chain[1:]))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _scan(const, local_roots)


def _code_digest(code: types.CodeType, strict: bool = False) -> str:
    """Digest of a code object's instructions, without line numbers or its file's name.

    Instructions are read with their arguments resolved (the constant, the
    name), so a docstring, which shifts constant indices, does not count.
    Local variable names count only when ``strict``.
    """
    ops: list[tuple[str, Any]] = []
    for ins in dis.get_instructions(code):
        arg = ins.argval
        if isinstance(arg, types.CodeType):
            arg = ("<code>", _code_digest(arg, strict))
        elif not strict and (ins.opcode in dis.haslocal or ins.opcode in dis.hasfree):
            arg = ins.arg
        ops.append((ins.opname, arg))
    material: tuple[Any, ...] = (
        tuple(ops),
        len(code.co_varnames),
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_exceptiontable,
    )
    if strict:
        material += (code.co_varnames, code.co_freevars, code.co_cellvars)
    return hashing.hash_value(material)


# -- source ----------------------------------------------------------------------------------


def _source_digest(obj: Any, codes: tuple[types.CodeType, ...], *node_types: type) -> str | None:
    """Digest of ``obj``'s normalized source, or None when it is missing or stale.

    ``inspect`` reads the file as it is on disk now, which may not be the code
    that runs if the file was edited after import. The source is used only if
    compiling it yields the running bytecode for every code object in
    ``codes``; otherwise the caller falls back to hashing bytecode.
    """
    try:
        lines, start = inspect.findsource(obj)
        filename = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (OSError, TypeError):
        return None
    if not all(_is_current(code, filename, lines) for code in codes):
        return None
    snippet = "".join(inspect.getblock(lines[start:]))
    try:
        tree = ast.parse(textwrap.dedent(snippet))
    except SyntaxError:
        return None
    if not tree.body or not isinstance(tree.body[0], node_types):
        return None
    node = tree.body[0]
    _strip_docstrings(node)
    node.name = ""  # type: ignore[attr-defined]  # renaming keeps the fingerprint
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.decorator_list = []  # decorator arguments are execution settings, not code
    return hashing.hash_value(
        ("ast", ast.dump(node, annotate_fields=True, include_attributes=False))
    )


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]


def _is_current(code: types.CodeType, filename: str, lines: list[str]) -> bool:
    source = "".join(lines)
    key = (filename, hashing.hash_value(source))
    compiled = _COMPILED.get(key)
    if compiled is None:
        try:
            module_code = compile(source, filename, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
        compiled = {}
        _index_code(module_code, compiled)
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = compiled
    wanted = _code_digest(code, strict=True)
    return any(_code_digest(c, strict=True) == wanted for c in compiled.get(code.co_qualname, ()))


def _index_code(code: types.CodeType, into: dict[str, list[types.CodeType]]) -> None:
    into.setdefault(code.co_qualname, []).append(code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _index_code(const, into)


def _class_body_names(cls: type) -> list[str]:
    """Names a class body reads outside its methods' bodies (bases, attributes, defaults).

    Methods' own reads come from their bytecode; this covers what only the
    class body evaluates, such as ``scale = DEFAULT_SCALE`` or ``def f(x=LIMIT)``.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return []
    names: list[str] = []
    pending: list[ast.AST] = [tree.body[0]] if tree.body else []
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(node.args.defaults + [d for d in node.args.kw_defaults if d])
            pending.extend(getattr(node, "decorator_list", []))
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.append(node.id)
        pending.extend(ast.iter_child_nodes(node))
    return sorted(set(names))


# -- classes ---------------------------------------------------------------------------------


def _class_functions(cls: type) -> list[types.FunctionType]:
    """Functions defined in a class body: methods, static/class methods, property accessors."""
    found: list[Any] = []
    for value in vars(cls).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            found.extend(
                f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)
            )
        elif isinstance(value, functools.cached_property):
            found.append(value.func)
        elif isinstance(value, types.FunctionType):
            found.append(value)
    return found


def _class_info(cls: type) -> tuple[str, tuple[tuple[Any, _Ref], ...]]:
    """(digest of the class's code, references with the globals each resolves in)."""
    functions = _class_functions(cls)
    key = tuple(id(f.__code__) for f in functions)
    cached = _CLASS_INFO.get(id(cls))
    if cached is not None and cached[0] is cls and cached[1] == key:
        return cached[2], cached[3]
    module = sys.modules.get(cls.__module__)
    # Methods a decorator generated (dataclass's __init__...) have no source to check.
    own = [f for f in functions if f.__code__.co_filename == getattr(module, "__file__", None)]
    digest = _source_digest(cls, tuple(f.__code__ for f in own), ast.ClassDef)
    if digest is None:
        digest = hashing.hash_value(
            sorted((f.__qualname__, _code_digest(f.__code__)) for f in functions)
        )
    refs: list[tuple[Any, _Ref]] = []
    for f in functions:
        refs.extend((f, ref) for ref in _function_info(f).refs)
    if module is not None:
        refs.extend((module, _Ref(("global", name), ())) for name in _class_body_names(cls))
    _CLASS_INFO[id(cls)] = (cls, key, digest, tuple(refs))
    return digest, tuple(refs)


# -- the walk --------------------------------------------------------------------------------


def _unwrap(obj: Any) -> Any:
    while _is_step(obj):
        obj = obj.__wrapped__
    return obj


def _last(module_name: str) -> str:
    return module_name.rpartition(".")[2]


class _Walk:
    """One fingerprint computation: the parts found so far and the objects already seen."""

    def __init__(self) -> None:
        self.root_module: str | None = None
        self.seen: dict[int, object] = {}  # id -> object, kept alive so ids stay unique
        self.pairs: list[tuple[str, str]] = []
        self.parts: dict[str, str] = {}
        self.constants: set[tuple[str, str]] = set()  # (module name, global name) already hashed
        self.open_containers: set[int] = set()

    def result(self) -> CodeFingerprint:
        flat = [item for pair in sorted(self.pairs) for item in pair]
        return CodeFingerprint(hashing.combine(*flat), dict(sorted(self.parts.items())))

    def add_part(self, key: str, display: str, digest: str) -> None:
        """Record a part; ``key`` (no module name) feeds the digest, ``display`` explains it."""
        self.pairs.append((key, digest))
        if display in self.parts and self.parts[display] != digest:
            display = f"{display} #{sum(1 for name in self.parts if name.startswith(display))}"
        self.parts[display] = digest

    def display(self, module_name: str, name: str) -> str:
        return name if module_name == self.root_module else f"{_last(module_name)}.{name}"

    def first_visit(self, obj: object) -> bool:
        if id(obj) in self.seen:
            return False
        self.seen[id(obj)] = obj
        return True

    # Structural objects --------------------------------------------------------------

    def function(
        self, fn: types.FunctionType, is_root: bool = False, alias: str | None = None
    ) -> None:
        if not self.first_visit(fn):
            return
        info = _function_info(fn)
        where = fn.__qualname__
        tokens = [info.digest]
        for index, value in enumerate(fn.__defaults__ or ()):
            tokens.append(self.token(value, f"default value #{index + 1}", where))
        for name, value in sorted((fn.__kwdefaults__ or {}).items()):
            tokens.append(self.token(value, f"default value of parameter '{name}'", where))
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not yet filled in
                tokens.append(f"<empty cell {name}>")
                continue
            tokens.append(self.token(value, f"closure variable '{name}'", where))
        digest = hashing.combine(*tokens)
        if is_root:
            self.add_part("<self>", "<self>", digest)
        else:
            # A lambda is better known by the global name it is bound to than by "<lambda>",
            # and a decorator's wrapper (named after what it wraps) by its own code's name.
            name = alias if alias and fn.__name__ == "<lambda>" else fn.__qualname__
            if fn.__code__.co_qualname != fn.__qualname__ and fn.__name__ != "<lambda>":
                name = f"{name} (via {fn.__code__.co_qualname})"
            self.add_part(name, self.display(fn.__module__ or "", name), digest)
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None:
            self.reference(wrapped, "__wrapped__", where)
        for ref in info.refs:
            self.follow(ref, fn.__globals__, where)

    def klass(self, cls: type) -> None:
        if not self.first_visit(cls):
            return
        digest, refs = _class_info(cls)
        self.add_part(cls.__qualname__, self.display(cls.__module__, cls.__qualname__), digest)
        for base in cls.__bases__:
            self.reference(base, "base class", cls.__qualname__)
        for owner, ref in refs:
            scope = owner.__globals__ if isinstance(owner, types.FunctionType) else vars(owner)
            self.follow(ref, scope, cls.__qualname__)

    def module(self, module: types.ModuleType) -> None:
        """A user module used as a whole (passed around, ``getattr``, ``import *``)."""
        if not self.first_visit(module):
            return
        members = [
            v
            for v in vars(module).values()
            if isinstance(v, (types.FunctionType, type))
            and getattr(v, "__module__", None) == module.__name__
        ]
        codes = tuple(v.__code__ for v in members if isinstance(v, types.FunctionType))
        digest = _module_source_digest(module, codes)
        self.add_part("<module>", f"module {_last(module.__name__)}", digest)
        for member in sorted(members, key=lambda v: v.__qualname__):
            self.reference(member, member.__qualname__, module.__name__)

    def package(self, top: str) -> None:
        for key, version in _package_versions(top):
            if key not in self.parts:
                self.add_part(key, key, version)

    # References ------------------------------------------------------------------------

    def follow(self, ref: _Ref, scope: dict[str, Any], where: str) -> None:
        """Resolve a reference found in code and account for what it reaches."""
        if ref.root[0] == "global":
            name = ref.root[1]
            if name not in scope or (name.startswith("__") and name.endswith("__")):
                # A builtin, a name not defined yet (the code's own digest names it), or module
                # metadata such as __name__, which every class body reads and must not count.
                return
            target, owner = scope[name], scope.get("__name__", "")
        else:
            target = _import_root(ref.root, scope)
            owner = getattr(target, "__name__", "")
            name = owner
            if target is None:
                return
        for attr in ref.attrs:
            if not isinstance(target, types.ModuleType) or _module_kind(target) != "user":
                break
            owner, name = target.__name__, attr
            target = getattr(target, attr, _MISSING)
            if target is _MISSING:  # a submodule imported elsewhere, or a name the code will miss
                target = sys.modules.get(f"{owner}.{attr}", _MISSING)
            if target is _MISSING:
                return
        if ref.binding and isinstance(target, types.ModuleType):
            return
        if _is_structural(target) and not isinstance(target, (types.MethodType, functools.partial)):
            self.reference(target, name, where, alias=name)
        else:  # a value, or a method or partial whose bound values need a part of their own
            self.constant(target, name, owner, where)

    def reference(self, obj: Any, name: str, where: str, alias: str | None = None) -> str:
        """Account for a function, class, module or other callable; return a token for it."""
        obj = _unwrap(obj)
        if isinstance(obj, types.ModuleType):
            kind = _module_kind(obj)
            if kind == "user":
                self.module(obj)
            elif kind == "installed":
                self.package(obj.__name__.partition(".")[0])
            return f"<module {_last(obj.__name__)}>"
        if isinstance(obj, (types.MethodType, functools.partial)):
            inner = obj.__func__ if isinstance(obj, types.MethodType) else obj.func
            bound = obj.__self__ if isinstance(obj, types.MethodType) else (obj.args, obj.keywords)
            return hashing.combine(
                self.reference(inner, name, where), self.token(bound, name, where)
            )
        if isinstance(obj, (staticmethod, classmethod)):
            return self.reference(obj.__func__, name, where)
        kind, top = _kind_of_object(obj)
        if kind == "installed":
            self.package(top)
        elif kind == "user" and isinstance(obj, types.FunctionType):
            self.function(obj, alias=alias)  # follows __wrapped__ itself, after its own part
            return f"<ref {obj.__qualname__}>"
        elif kind == "user" and isinstance(obj, type):
            self.klass(obj)
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:  # an lru_cache, a contextmanager, a library's decorator
            self.reference(wrapped, name, where)
        return f"<ref {getattr(obj, '__qualname__', type(obj).__qualname__)}>"

    def container_token(self, value: Any, label: str, where: str) -> str:
        """A list, dict... holding functions or classes: a registry, a pipeline of helpers."""
        if id(value) in self.open_containers:
            raise UnhashableValueError(f"{label} used by '{where}' contains itself. {_FIX}")
        self.open_containers.add(id(value))
        if isinstance(value, dict):
            pairs = [
                (self.token(k, label, where), self.token(v, label, where)) for k, v in value.items()
            ]
            tokens = [token for pair in sorted(pairs) for token in pair]
        else:
            tokens = [self.token(item, label, where) for item in value]
            if isinstance(value, (set, frozenset)):
                tokens.sort()
        self.open_containers.discard(id(value))
        return hashing.combine(type(value).__name__, *tokens)

    def constant(self, value: Any, name: str, owner: str, where: str) -> None:
        if (owner, name) in self.constants:
            return
        self.constants.add((owner, name))
        digest = self.token(value, f"module-level value '{name}'", where)
        self.add_part(name, self.display(owner, name), digest)

    def token(self, value: Any, label: str, where: str) -> str:
        """Digest of a value that code uses; functions and classes inside it are followed."""
        if _is_structural(value):
            return self.reference(value, label, where)
        if _is_logger(value):
            return "<logger>"  # a logger's name is its module's name; it never changes results
        if type(value) in _CONTAINERS and _holds_code(value, set()):
            return self.container_token(value, label, where)
        self.reference(type(value), label, where)  # an instance: its class's code counts too
        try:
            return hashing.hash_value(value)
        except UnhashableValueError as exc:
            raise UnhashableValueError(
                f"{label} used by '{where}' cannot be hashed ({exc}). {_FIX}"
            ) from exc


def _module_source_digest(module: types.ModuleType, codes: tuple[types.CodeType, ...]) -> str:
    digest = None
    try:
        lines, _ = inspect.findsource(module)
        filename = inspect.getsourcefile(module) or ""
        if all(_is_current(code, filename, lines) for code in codes):
            tree = ast.parse("".join(lines))
            _strip_docstrings(tree)
            digest = hashing.hash_value(("ast", ast.dump(tree, include_attributes=False)))
    except (OSError, TypeError, SyntaxError):
        pass
    return digest or hashing.hash_value(sorted(_code_digest(code) for code in codes))


def _import_root(root: tuple[Any, ...], scope: dict[str, Any]) -> Any:
    """The object a local ``import`` statement binds, importing it as the code would."""
    _, name, level, top_only = root
    try:
        if level:
            package = scope.get("__package__") or scope.get("__name__", "").rpartition(".")[0]
            name = importlib.util.resolve_name("." * level + name, package)
        module = sys.modules.get(name) or importlib.import_module(name)
    except (ImportError, ValueError):
        return None  # the step would fail on this import too; nothing to fingerprint
    return sys.modules.get(name.partition(".")[0]) if top_only else module


def _is_structural(obj: Any) -> bool:
    """Functions, classes, modules, steps and wrappers: followed as code, not hashed as values."""
    return isinstance(obj, _STRUCTURAL) or _is_step(obj) or _is_wrapper(obj)


def _is_step(obj: Any) -> bool:
    try:
        return getattr(obj, "_is_orchestrator_step", False) is True
    except Exception:  # noqa: BLE001 - an object whose __getattr__ raises oddly is not a step
        return False


def _is_wrapper(obj: Any) -> bool:
    """A callable object wrapping a function (``functools.lru_cache``, library decorators)."""
    attributes = getattr(obj, "__dict__", None)
    return isinstance(attributes, dict) and callable(obj) and "__wrapped__" in attributes


def _is_logger(value: Any) -> bool:
    logging = sys.modules.get("logging")
    return logging is not None and isinstance(value, (logging.Logger, logging.LoggerAdapter))


def _holds_code(value: Any, seen: set[int]) -> bool:
    """Whether a built-in container holds functions, classes or modules (at any depth)."""
    if id(value) in seen:
        return False
    seen.add(id(value))
    items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
    for item in items:
        if _is_structural(item):
            return True
        if type(item) in _CONTAINERS and _holds_code(item, seen):
            return True
    return False
