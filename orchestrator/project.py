"""A project's own defaults: the ``[tool.orchestrator]`` table of the nearest pyproject.toml.

Kedro, DVC and git users run commands from anywhere inside a project (its
root, ``pipelines/``, a notebook in ``notebooks/``). With the store at
``./cache`` of the current folder, each of those folders silently grows a
store of its own: a run from a subfolder re-runs everything, and ``orch runs``
elsewhere shows nothing. A project that writes

.. code-block:: toml

    [tool.orchestrator]
    store = "data/cache"        # relative to the folder of this pyproject.toml
    metadata = "~/.orch/myproj" # optional

has one store wherever in it a command runs. The table is looked for from the
current folder upwards; the first pyproject.toml that holds one is the
project (one without the table, such as a library's inside a monorepo, is
passed over, as ruff passes over one without ``[tool.ruff]``). This module
only reads the table; ``orchestrator.context`` decides the precedence
(``--store``/``store=`` > ``$ORCH_STORE`` > the table > ``./cache``).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError, did_you_mean

TABLE = "[tool.orchestrator]"
KEYS = ("store", "metadata")


@dataclass(frozen=True)
class ProjectSettings:
    """The ``[tool.orchestrator]`` table of one pyproject.toml, its keys as written there."""

    file: Path
    store: str | None
    metadata: str | None

    @property
    def folder(self) -> Path:
        """The project root: the folder of the pyproject.toml, which relative paths in the table start from."""
        return self.file.parent

    @property
    def source(self) -> str:
        """How a message names where a setting came from: ``[tool.orchestrator] in /p/pyproject.toml``."""
        return f"{TABLE} in {self.file}"


def find_project(start: Path | None = None) -> ProjectSettings | None:
    """The table of the nearest pyproject.toml at or above ``start`` (default: the current folder) holding one.

    None when no pyproject.toml up to the file system's root has the table, or when
    the current folder was deleted (a relative store then fails on its own, with its
    own message).

    Raises:
        UserError: a pyproject.toml that mentions the table but is no valid TOML, or a
            table with an unknown key or a value that is not a non-empty string.
    """
    if start is None:
        try:
            start = Path.cwd()
        except (FileNotFoundError, OSError):
            return None
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        try:
            text = candidate.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # none here (or unreadable, so not a project we could have configured)
        settings = _read(candidate, text)
        if settings is not None:
            return settings
    return None


def _read(file: Path, text: str) -> ProjectSettings | None:
    """The table in ``text`` (the content of ``file``), or None when it has none."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if "tool.orchestrator" not in text:
            return None  # a broken pyproject.toml of a project that does not configure us: not our business
        raise UserError(f"cannot read {TABLE} in {file}: it is not valid TOML ({exc}). Fix the file.") from None
    tool = document.get("tool")
    table = tool.get("orchestrator") if isinstance(tool, dict) else None
    # [tool.orchestrater] would be passed over in silence, and every run would go to ./cache again; beside
    # a right one, its settings (a `metadata` folder) would be left out without a word.
    others = [name for name in (tool or {}) if name != "orchestrator"]
    misspelled = difflib.get_close_matches("orchestrator", others, n=1, cutoff=0.9)
    if misspelled:
        if table is not None:
            raise UserError(f"[tool.{misspelled[0]}] in {file}, beside {TABLE}: a misspelled table, whose keys "
                            f"would be left out. Move them into {TABLE} and remove it.")
        raise UserError(f"[tool.{misspelled[0]}] in {file}: did you mean {TABLE}? Rename the table.")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UserError(f"tool.orchestrator in {file} must be a table ({TABLE} with keys "
                        f"{', '.join(KEYS)}), not {type(table).__name__}.")
    values: dict[str, str | None] = dict.fromkeys(KEYS)
    for key, value in table.items():
        if key not in KEYS:
            raise UserError(f"unknown key '{key}' in {TABLE} of {file}.{did_you_mean(key, KEYS)} "
                            f"The keys are: {', '.join(KEYS)}.")
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"'{key}' in {TABLE} of {file} must be a non-empty string (a folder, relative to "
                            f"{file.parent}, or a URL), got {value!r}.")
        values[key] = value
    return ProjectSettings(file=file, store=values["store"], metadata=values["metadata"])


def anchored(settings: ProjectSettings, value: str, is_url: bool) -> str:
    """A path from the table, relative to the project root (a URL, or an absolute or ``~`` path, as it is)."""
    if is_url:
        return value
    path = Path(os.path.expanduser(value))
    return os.fspath(path if path.is_absolute() else settings.folder / path)
