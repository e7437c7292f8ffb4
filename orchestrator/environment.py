"""Who ran a pipeline, where and with what: user, host, Python and package versions, git commit.

Recorded on every run for the audit trail. Everything here is cheap and
never fails a run: a missing user name or git folder is just left out.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


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
