"""Where code comes from: the user's own code, the standard library, an installed package, or this package.

A step's fingerprint follows the user's code into its functions and classes,
counts an installed package by its distribution version (``pkg:numpy``), and
ignores the standard library and ``orchestrator`` itself. This module makes
that decision, from where a module's or a function's file lives rather than
from ``__module__`` (which decorators copy), and looks up the versions of
installed distributions. Kinds are the strings ``"user"``, ``"installed"``,
``"stdlib"`` and ``"orchestrator"``.

This module must not read source, hash code or values (``code_analysis`` and
``fingerprint`` do), must not import the modules it classifies beyond what
``importlib.util.find_spec`` needs, and must not import numpy, pandas or
pyarrow. Results are cached for the life of the process.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import sysconfig
import types
from typing import Any

_OWN_PACKAGE = __name__.partition(".")[0]
_OWN_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "")


def is_user_module(module: types.ModuleType | str) -> bool:
    """Tell whether a module is the user's code: not stdlib, not installed, not this package."""
    if isinstance(module, str):
        loaded = sys.modules.get(module)
        if loaded is None:
            return _kind_of_unloaded(module) == "user"
        module = loaded
    return module_kind(module) == "user"


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


def file_kind(path: str) -> str:
    """The kind of the code in the file ``path`` (``"user"``, ``"installed"``...)."""
    return _path_kind(path)


def is_library_function(function: types.FunctionType) -> bool:
    """Whether a function is the standard library's or an installed package's, and wraps none of the user's.

    Python copies such functions into the user's classes (``Enum.__new__``
    into every enum, namedtuple's ``_make``, 3.13's dataclass ``__replace__``),
    and their code and the names it reads change between releases: code that
    walks a user's class counts them by name only. Judged by the file the code
    lives in, not ``__module__``: a dataclass's generated methods have none
    when the class's module is not loaded (a worker that got it by value), or
    pytest's ``__main__``, and are the user's code all the same. A library's
    wrapper around the user's function (a dataclass's ``__repr__``, a
    scikit-learn transformer's ``transform``) is not library code. Library code
    a worker received by value keeps its file (``class_refs._in_its_file``), so
    it is judged there as in the driver.
    """
    filename = function.__code__.co_filename
    if not os.path.isabs(filename) or _path_kind(filename) not in ("stdlib", "installed"):
        return False  # the user's file, or code generated from text (``<string>``)
    inner = _unwrapped(function)
    return inner is function or not isinstance(inner, types.FunctionType) or is_library_function(inner)


def _unwrapped(function: types.FunctionType) -> Any:
    """What a chain of ``functools.wraps`` wrappers wraps, or the function itself."""
    import inspect

    try:
        return inspect.unwrap(function)
    except ValueError:  # a wrapper that wraps itself
        return function


def note_file_kind(path: str, kind: str) -> None:
    """Take ``path`` as a file of library code of ``kind`` (``"stdlib"``, ``"installed"``) from now on.

    What the process that sent code of that file by value found it to be
    (``class_refs``): a worker whose Python lives elsewhere (a Dask worker's
    image) has no such file of its own, and would take the code for the user's.
    """
    if kind in ("stdlib", "installed") and _SENT_KINDS.get(path) != kind:
        _SENT_KINDS[path] = kind
        _path_kind.cache_clear()


_SENT_KINDS: dict[str, str] = {}


@functools.cache
def _path_kind(path: str) -> str:
    sent = _SENT_KINDS.get(path)
    if sent is not None:
        return sent
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


def _kind_of_name(name: str, file: str | None, portions: tuple[str, ...] = ()) -> str:
    top = name.partition(".")[0]
    if top == _OWN_PACKAGE:
        return "orchestrator"
    if file:
        return _path_kind(file)
    if portions:
        # A namespace package (no __init__.py, so no __file__) is where its folders are: an
        # installed one (opentelemetry, google) is not the user's, and must not travel to
        # workers by value. One folder of the user's makes it theirs, so that the walk goes on
        # into its modules, each of which is then classified by its own file.
        kinds = {_path_kind(portion) for portion in portions}
        return "user" if "user" in kinds else "installed" if "installed" in kinds else kinds.pop()
    if name in sys.builtin_module_names or top in sys.stdlib_module_names:
        return "stdlib"
    return "user"  # made with types.ModuleType or exec, or an interactive __main__


_KINDS: dict[str, tuple[types.ModuleType, str]] = {}


def module_kind(module: types.ModuleType) -> str:
    """The kind of a loaded module, cached per module object."""
    cached = _KINDS.get(module.__name__)
    if cached is not None and cached[0] is module:
        return cached[1]
    kind = _kind_of_name(module.__name__, getattr(module, "__file__", None), _portions(module))
    _KINDS[module.__name__] = (module, kind)
    return kind


def _kind_of_unloaded(name: str) -> str:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None and spec.has_location else None
    locations = spec.submodule_search_locations if spec is not None else None
    return _kind_of_name(name, origin, tuple(locations or ()))


def _portions(module: types.ModuleType) -> tuple[str, ...]:
    """The folders of a namespace package; empty for a module with a file of its own."""
    if getattr(module, "__file__", None):
        return ()
    try:
        return tuple(str(entry) for entry in getattr(module, "__path__", ()) or ())
    except TypeError:  # a __path__ that is not iterable
        return ()


def object_kind(obj: Any) -> tuple[str, str]:
    """Return (kind, top-level module name) of where a function, class or builtin is defined.

    The top-level name is what ``package_versions`` takes; it is empty for
    code that is not installed.
    """
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
            return module_kind(owner), owner.__name__.partition(".")[0]
        globals_ = getattr(obj, "__globals__", None)
        if isinstance(globals_, dict) and "__name__" in globals_:
            found = globals_["__name__"]
            return _kind_of_name(found, globals_.get("__file__")), found.partition(".")[0]
        return ("user" if isinstance(obj, types.FunctionType) else "stdlib"), ""
    module = sys.modules.get(name)
    if module is not None:
        return module_kind(module), name.partition(".")[0]
    globals_ = getattr(obj, "__globals__", None)
    file = globals_.get("__file__") if isinstance(globals_, dict) else None
    return _kind_of_name(name, file), name.partition(".")[0]


@functools.cache
def _distributions() -> dict[str, list[str]]:
    import importlib.metadata  # deferred: scanning installed distributions is slow to import

    return dict(importlib.metadata.packages_distributions())


@functools.cache
def package_versions(top: str) -> tuple[tuple[str, str], ...]:
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
