"""Load a pipeline definition file: ``FILE[:PIPELINE]`` → a ``Pipeline``.

The file's folder is put on ``sys.path`` while it loads (and stays there for
the run), so a pipeline next to its ``helpers.py`` just works. The module is
registered under the file's stem, like a plain import; a file of a package
that imports relatively (``from ..features import clean``) is imported as its
package's module instead (``churnlab.pipelines.train``, with the folder above
the package on ``sys.path``), as ``python -m`` would. Either way the keys of a
pipeline run with ``orch run FILE`` equal those of the same pipeline imported
from Python. Import errors in the user's file become one clear line, naming
the helper module and line where one of its imports failed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from orchestrator.errors import CURRENT_FOLDER_GONE, LoadError, UserError, current_folder_gone, did_you_mean
from orchestrator.pipeline import Pipeline
from orchestrator.step import Step
from orchestrator.user_code import file_kind


def split_target(target: str) -> tuple[str, str | None]:
    """``"train.py:training"`` → ``("train.py", "training")``; a drive letter is not a separator, nor is a
    colon in the name of a file that exists (``run:1.py``)."""
    if ":" in target and os.path.isfile(target):
        return target, None
    path, sep, name = target.rpartition(":")
    if sep and path and not (len(path) == 1 and path.isalpha()) and name and "/" not in name and "\\" not in name:
        return path, name
    return target, None


def _meant_file(file: str) -> str:
    """The fix for a target that names an existing file another way, else "Check the path".

    ``train.py::training`` (pytest's separator), ``train`` (a module, as ``python -m`` takes it) and
    ``pipelines.train`` (a dotted module) each name a file that is there.
    """
    if file.endswith(":") and Path(file.rstrip(":")).is_file():
        return f" Name a pipeline after one colon: {file.rstrip(':')}:PIPELINE."
    for candidate in (f"{file}.py", file.replace(".", os.sep) + ".py"):
        if candidate != file and Path(candidate).is_file():
            return f" Did you mean {candidate}? orch takes the pipeline's file."
    return " Check the path."


def load_pipeline(target: str) -> Pipeline:
    """The pipeline named by ``FILE[:PIPELINE]``.

    Raises:
        LoadError: missing file, import failure, no pipeline, or an ambiguous choice.
    """
    file, name = split_target(target)
    if name is None and target.endswith(":") and split_target(target + "x")[1] == "x":
        raise LoadError(f"the pipeline name after ':' in '{target}' is empty. Write {target}PIPELINE, "
                        f"or just {target[:-1]} when the file defines one pipeline.")
    if name is not None and file.endswith(":") and Path(file.rstrip(":")).is_file():
        raise LoadError(f"'{target}' has two colons (pytest's separator): write {file.rstrip(':')}:{name}.")
    if name is not None and not os.path.exists(file) and ":" in file:
        # `train.py:training:x`: the file is what comes before the first colon, if that one is there.
        first, _, rest = target.partition(":")
        if Path(first).is_file():
            raise LoadError(f"'{target}' has more than one ':' after the file: write {first}:PIPELINE, with one "
                            f"pipeline's name (here '{rest}' follows {first}:).")
    module = load_module(file)
    found = pipelines_in(module)
    if name is not None:
        if name in found:
            return found[name]
        hint = did_you_mean(name, found)
        if not hint and isinstance(getattr(module, name, None), Step):
            hint = f" '{name}' is a step: name the pipeline that calls it."
        raise LoadError(f"{file} has no pipeline '{name}'.{hint}"
                        + (f" Pipelines in it: {', '.join(found)}." if found else ""))
    if not found:
        methods = [f"{cls.__name__}.{attr}" for cls in vars(module).values()
                   if isinstance(cls, type) and cls.__module__ == module.__name__
                   for attr, member in vars(cls).items() if isinstance(member, Pipeline)]
        if methods:
            # A flow class (Metaflow, ZenML): its pipeline needs an instance, which orch cannot guess.
            instance, attr = methods[0].split(".")
            raise LoadError(f"{file} defines no pipeline at its top level; {', '.join(methods)} "
                            f"{'is a pipeline' if len(methods) == 1 else 'are pipelines'} of a class, which needs an "
                            f"instance: add `{attr} = {instance}(...).{attr}` at the top level of {file}, then run "
                            f"{file}:{attr}.")
        raise LoadError(f"{file} defines no pipeline. Decorate a function with @pipeline.")
    # A pipeline the file imports to reuse its steps (``from train import training``) is not
    # the one it means: those it defines come first, the imported ones only when it defines none.
    own = {n: p for n, p in found.items() if getattr(p.fn, "__module__", None) == module.__name__}
    candidates = own or found
    if len(candidates) > 1:
        parts = _called_by(candidates)
        # A pipeline made of the others (`main` calls `features`) is the one a file of
        # sub-pipelines is most likely run for: suggest it, not the first sub-pipeline.
        first = next((n for n in candidates if n not in parts), next(iter(candidates)))
        called = [n for n in candidates if parts.get(n) == first]
        why = f" (it calls {', '.join(called)})" if called else ""
        verb = "defines" if own else "imports"
        raise LoadError(f"{file} {verb} {len(candidates)} pipelines ({', '.join(candidates)}). "
                        f"Choose one: {file}:{first}{why}")
    return next(iter(candidates.values()))


def pipelines_in(module: ModuleType) -> dict[str, Pipeline]:
    found: dict[str, Pipeline] = {}
    for value in vars(module).values():
        if isinstance(value, Pipeline) and value.name not in found:
            found[value.name] = value
    return found


def _called_by(pipelines: dict[str, Pipeline]) -> dict[str, str]:
    """Each of ``pipelines`` that another one's body calls by name -> the name of one that calls it.

    Read from the bodies' code (the global names they use, nested functions
    and comprehensions included): nothing is built.
    """
    by_object = {id(p): name for name, p in pipelines.items()}
    parts: dict[str, str] = {}
    for name, p in pipelines.items():
        code = getattr(p.fn, "__code__", None)
        module_globals = getattr(p.fn, "__globals__", {})
        codes = [code] if code is not None else []
        while codes:
            current = codes.pop()
            codes.extend(c for c in current.co_consts if hasattr(c, "co_names"))
            for used in current.co_names:
                other = by_object.get(id(module_globals.get(used)))
                if other is not None and other != name:
                    parts.setdefault(other, name)
    return parts


def load_module(file: str) -> ModuleType:
    """Import the Python file ``file`` as a module named after its stem."""
    path = Path(file)
    if not path.exists():
        if not path.is_absolute() and current_folder_gone():
            raise LoadError(CURRENT_FOLDER_GONE)
        raise LoadError(f"pipeline file {file} does not exist.{_meant_file(file)}")
    if path.is_dir() or path.suffix != ".py":
        raise LoadError(f"{file} is not a Python file. Give a .py file that defines a @pipeline.")
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    member = _package_member(path)
    if member is not None:
        return _load_package_member(file, path, *member)
    name = path.stem if path.stem.isidentifier() else "orch_pipeline"
    existing = sys.modules.get(name)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == str(path):
        return existing
    if existing is not None:
        name = f"orch_pipeline_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {file}. Give a .py file that defines a @pipeline.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _execute(file, path, name, lambda: spec.loader.exec_module(module))  # type: ignore[union-attr]
    return module


def _package_member(path: Path) -> tuple[str, str] | None:
    """``("churnlab.pipelines.train", ".../src")`` for a file of a package that imports relatively.

    Only such a file is imported as its package's module: it cannot load any other way, and a
    file that loaded as a plain module before keeps doing so (its package's ``__init__.py`` does
    not start running). Its keys are those of a plain import either way, since fingerprints
    hold no module names.
    """
    if not path.stem.isidentifier():
        return None
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return None  # the plain import reports it
    if not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree)):
        return None
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists() and folder.name.isidentifier() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return (".".join(parts), str(folder)) if len(parts) > 1 else None


def _load_package_member(file: str, path: Path, name: str, root: str) -> ModuleType:
    """Import ``path`` as the module ``name`` of its package, whose top folder is in ``root``."""
    if root not in sys.path:
        sys.path.insert(0, root)
    existing = sys.modules.get(name)
    if existing is None:
        _execute(file, path, name, lambda: importlib.import_module(name))
        existing = sys.modules[name]
    found = os.path.realpath(getattr(existing, "__file__", "") or "")
    if found != os.path.realpath(path):
        top = name.partition(".")[0]
        raise LoadError(f"{file} is module {name} of package '{top}', but importing {name} gives {found} "
                        f"(another copy of '{top}', installed or earlier on sys.path). Run that copy with "
                        f"`python -m {name}`, or install this one with `pip install -e .`")
    return existing


def _execute(file: str, path: Path, name: str, run: Callable[[], object]) -> None:
    """Run the import of the pipeline file; a failure becomes one line naming where it happened."""
    try:
        run()
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        if exc.filename in (None, str(path)):
            raise LoadError(f"{file}:{exc.lineno}: syntax error: {exc.msg}. Fix the file and try again.") from exc
        # In a module the file imports: name that module, and the import line that reached it.
        line, _ = _failure_site(exc, path)
        raise LoadError(f"{_shown(exc.filename, path)}:{exc.lineno}: syntax error: {exc.msg} (imported from "
                        f"{path.name}:{line}). Fix the file and try again.") from exc
    except UserError:
        sys.modules.pop(name, None)
        raise  # already one line that names its place (a bad @step, a missing file)
    except SystemExit as exc:
        # `sys.exit()` or an `argparse` parse of orch's own arguments in a file written as a script:
        # ended orch there, silently and with exit 0 for `sys.exit()`, with no run and no JSON.
        sys.modules.pop(name, None)
        raise LoadError(f"importing {file} called sys.exit({'' if exc.code is None else repr(exc.code)})"
                        f"{_where(exc, path)}: orch imports the file to find its pipelines, so what runs it "
                        "as a script (argument parsing, `main()`) belongs under "
                        "`if __name__ == \"__main__\":`.") from None
    except Exception as exc:
        sys.modules.pop(name, None)
        where = _where(exc, path)
        text = f"{type(exc).__name__}: {exc}{_suggestion(exc) or _uninstalled_package(exc, path)}"
        if isinstance(exc, ImportError) and "relative import" in str(exc):
            raise LoadError(f"importing {file} failed{where}: {text}. " + _relative_import_hint(path)) from exc
        raise LoadError(f"importing {file} failed{where}: {text} (run with --verbose for the traceback)") from exc


def _relative_import_hint(path: Path) -> str:
    # A file of a package is imported as its package's module (see _package_member), so a
    # relative import fails only outside a package, or reaching above its top folder.
    package: list[str] = []
    folder = path.parent
    while (folder / "__init__.py").exists() and folder.name.isidentifier() and folder.parent != folder:
        package.insert(0, folder.name)
        folder = folder.parent
    if not package:
        return (f"{path.name} is not in a package (no __init__.py beside it), so a relative import has no "
                f"package to start from: use an absolute import (`from helpers import x` for a file beside "
                f"it, whose folder is on sys.path), or add __init__.py to make its folder a package.")
    dotted = ".".join(package)
    return (f"{path.name} is in package '{dotted}' (its top folder in {folder}): a relative import must "
            f"stay inside it. Use an absolute import for a module outside it, with its folder on PYTHONPATH.")


def _failure_site(exc: BaseException, path: Path) -> tuple[int | None, tuple[str, int] | None]:
    """The line of ``path`` that failed, and the deepest frame of the user's code below it, if any.

    The deepest frame is the last one in a file of the user's own (not the
    standard library, an installed package or this package) under the
    pipeline file's failing line: a helper module it imports, however deep.
    """
    tb = exc.__traceback__
    line, inner = None, None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == str(path):
            line, inner = tb.tb_lineno, None
        elif line is not None and os.path.isabs(filename) and file_kind(filename) == "user":
            inner = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return line, inner


def _where(exc: BaseException, path: Path) -> str:
    """`` at line 4`` in the pipeline file, or `` at helpers.py:3 (imported from pipe.py:2)``.

    A mistake in a helper module is shown where it is, not at the ``import``
    line that ran it.
    """
    line, inner = _failure_site(exc, path)
    if line is None:
        return ""
    if inner is None:
        return f" at line {line}"
    return f" at {_shown(inner[0], path)}:{inner[1]} (imported from {path.name}:{line})"


def _shown(filename: str, pipeline_file: Path) -> str:
    """A file's name as the user knows it: relative to the pipeline's folder when inside it."""
    relative = os.path.relpath(filename, pipeline_file.parent)
    return os.path.basename(filename) if relative.startswith("..") else relative


def _uninstalled_package(exc: BaseException, path: Path) -> str:
    """Where a module that cannot be found is, when it is the project's own package, not installed here.

    Kedro's and most projects' layout keeps the package in ``src/myproj`` and the
    pipelines in ``pipelines/``: ``import myproj`` works only once the project is
    installed (``pip install -e .``) in the Python that runs ``orch``, or with ``src`` on
    ``PYTHONPATH``. A bare ``No module named 'myproj'`` does not say that the package is
    right there, in another venv's reach or simply never installed.
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return ""
    top = exc.name.partition(".")[0]
    if top in sys.modules:
        return ""  # the package imports; a module inside it is what is missing
    for folder in (path.parent, *path.parent.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            break  # the project root: look no higher (an unrelated /lib is no answer to `import lib`)
    else:
        return ""
    for holder in (folder / "src", folder):
        if holder != path.parent and ((holder / top).is_dir() or (holder / f"{top}.py").is_file()):
            installable = (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()
            fix = f"pip install -e {folder}" if installable else f"put {holder} on PYTHONPATH"
            return (f". '{top}' is in {holder}, which this Python ({sys.executable}) does not import from: "
                    f"{fix}, with the Python that runs orch")
    return ""


_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def _suggestion(exc: BaseException) -> str:
    """``". Did you mean 'LogisticRegression'?"`` for a misspelled ``from module import name``."""
    if not isinstance(exc, ImportError) or exc.name is None:
        return ""
    missing = re.match(r"cannot import name '(\w+)'", str(exc))
    module = sys.modules.get(exc.name)
    if missing is None or module is None:
        return ""
    close = did_you_mean(missing.group(1), [n for n in dir(module) if not n.startswith("_")])
    return f".{close}" if close else ""
