"""Who ran a pipeline, where and with what: user, host, Python and package versions, git commit.

Recorded on every run for the audit trail. Everything here is cheap and
never fails a run: a missing user name or git folder is just left out.
"""

from __future__ import annotations

import dataclasses
import getpass
from enum import Enum
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """A parameter's value as the run records it: JSON that ``-p name=...`` would take back.

    A dataclass or a pydantic model is the object of its fields (as
    ``-p cfg='{"lr": 0.3}'`` gives it), not its ``str()``, which loses the
    class's structure; a set is a sorted list (``-p 'tags=["a"]'``); an ``Enum`` member is its value (``Color.RED`` is no
    text a model takes); any other value it cannot name is its text. pydantic is
    optional, so a model is known by its ``model_fields``, never imported.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):  # a JSON list, as -p takes a set; in order, as two equal sets record
        items = [jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:  # of several kinds (1 and "a")
            return sorted(items, key=repr)
    if isinstance(value, dict):
        # A key as -p writes it: an Enum member by its value (not 'Kind.A'), a date in ISO form.
        return {str(k.value if isinstance(k, Enum) else k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Enum):  # its value: what -p, a dataclass field and a pydantic model all take back
        return jsonable(value.value)
    fields = _field_names(value)
    if fields is not None:
        return {name: jsonable(getattr(value, name, None)) for name in fields}
    return str(value)


def _field_names(value: Any) -> list[str] | None:
    """The fields a dataclass or pydantic model instance is built from, or None for another value.

    Only the fields its constructor takes (a dataclass's ``init=False`` field
    is computed, and ``-p`` refuses it), in their declared order.
    """
    cls = type(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value) if f.init]
    model_fields = getattr(cls, "model_fields", None)  # pydantic 2, read from the class (2.11 warns on instances)
    if isinstance(model_fields, dict) and callable(getattr(cls, "model_validate", None)):
        return list(model_fields)
    return None


def user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (e.g. no passwd entry) is not an error
        return ""


_PACKAGES = ("orchestrator", "numpy", "pandas", "pyarrow", "scikit-learn", "cloudpickle", "xxhash")
_package_cache: dict[str, str] = {}


def package_versions() -> dict[str, str]:
    if not _package_cache:
        from importlib.metadata import PackageNotFoundError, version

        for name in _PACKAGES:
            try:
                _package_cache[name] = version(name)
            except PackageNotFoundError:
                continue
    return dict(_package_cache)


# The import name of a recorded package whose distribution is named otherwise.
_DISTRIBUTION_OF = {"sklearn": "scikit-learn"}


def stored_by_other_version(missing: str, packages: Any) -> str | None:
    """Why unpickling needs a module of an installed package that this process lacks, with the fix.

    A value pickled under numpy 2 names ``numpy._core``, which numpy 1.26 does
    not have (and a scikit-learn model names modules other releases moved):
    the package is installed, but in another version than the one that
    stored the value, so "install it" would send the user the wrong way.
    ``packages`` is what the run that stored it recorded (``{"numpy":
    "2.4.6"}``), or None. Returns None when the package is not installed here.
    """
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    top = missing.partition(".")[0]
    try:
        if importlib.util.find_spec(top) is None:
            return None
    except (ImportError, ValueError):
        return None
    name = _DISTRIBUTION_OF.get(top, top)
    try:
        here = version(name)
    except PackageNotFoundError:
        return None
    then = packages.get(name) if isinstance(packages, dict) else None
    if isinstance(then, str) and then and then != here:
        return (f"it was stored under {name} {then}, and this process has {name} {here}, which has no module "
                f"'{missing}'. Install {name} {then} here (pip install '{name}=={then}'), or run the pipeline "
                "again here to store it anew.")
    return (f"it needs the module '{missing}', which {name} {here} here does not have: it was stored under "
            f"another version of {name}. Install that version (`orch show RUN` lists a run's packages), or run "
            "the pipeline again here to store it anew.")


def undecodable_advice(materializer: str, type_name: str, recorded: Any, builtin: bool) -> str | None:
    """What to do about an artifact its materializer cannot decode, from the versions it was stored under.

    ``recorded`` is what the run that stored it recorded (``{"pandas": "2.2.3"}``),
    or None. When those versions are this process's, a library update is not
    the cause: the materializer accepted a value it cannot rebuild, and saying
    "check the library versions" would send the user looking in the wrong place.
    Returns None when nothing is recorded (the generic advice stands).
    """
    if not isinstance(recorded, dict) or not recorded:
        return None
    here = package_versions()
    differ = [(name, then) for name, then in sorted(recorded.items()) if isinstance(then, str) and here.get(name) != then]
    if differ:
        name, then = differ[0]
        now = f"{name} {here[name]}" if name in here else f"no {name}"
        more = f" (and {len(differ) - 1} more package{'s' if len(differ) > 2 else ''}: `orch show RUN` lists them)" \
            if len(differ) > 1 else ""
        return (f"It was stored under {name} {then}, and this process has {now}{more}: install {name} {then} here "
                f"(pip install '{name}=={then}'), or run the pipeline again here to store it anew.")
    fix = ("This is a bug of orchestrator: please report it with the value's type" if builtin else
           f"Fix the read() of materializer '{materializer}', or make its can_write() return False for such "
           "values, which then go to the next materializer (pickle at the last)")
    return (f"The run that stored it had this process's package versions, so materializer "
            f"'{materializer}' accepted a value of type {type_name} that it cannot rebuild. {fix}; then run the "
            "pipeline again to store it anew.")


def git_commit(file: str | None) -> str | None:
    """The commit checked out in the git repository holding ``file`` (or the cwd), read from ``.git``."""
    start = Path(file).resolve().parent if file else Path.cwd()
    for folder in (start, *start.parents):
        git = folder / ".git"
        if git.is_dir():
            try:
                head = (git / "HEAD").read_text().strip()
                if not head.startswith("ref: "):
                    return head
                ref = head[5:]
                ref_file = git / ref
                if ref_file.exists():
                    return ref_file.read_text().strip()
                packed = git / "packed-refs"
                if packed.exists():
                    for line in packed.read_text().splitlines():
                        if line.endswith(" " + ref):
                            return line.split()[0]
            except OSError:
                return None
            return None
    return None
