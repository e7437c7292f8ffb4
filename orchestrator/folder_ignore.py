"""Which entries of a folder input its digest leaves out: tool debris, and what ``.orchignore`` names.

A folder passed as a ``Path`` parameter is hashed by its files. Some files in
a folder are never data: Finder's ``.DS_Store``, Jupyter's
``.ipynb_checkpoints/``, Python's ``__pycache__/``, an editor's swap or
backup file, a version-control folder. They change when a user opens the
folder, not when the data changes, so counting them re-runs a pipeline for
nothing. They are left out by default (``DEFAULT_PATTERNS``), as git's and
DVC's conventions leave them out of what they track.

A ``.orchignore`` file at the top of the folder adds patterns, one per line,
in a simplified gitignore syntax (see ``IgnoreRules``). Rules are read in
order, defaults first, and the last rule that matches an entry decides, so
``!pattern`` keeps something a default or an earlier line leaves out. The
``.orchignore`` file itself is not data either: what it selects is.

This module knows nothing of digests: ``hashing`` asks it about each entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase

IGNORE_FILE = ".orchignore"

# Left out of every folder digest unless a ``!`` line of .orchignore keeps them.
DEFAULT_PATTERNS = (
    ".git/", ".hg/", ".svn/",  # version control
    "__pycache__/", ".ipynb_checkpoints/",  # Python and Jupyter
    ".DS_Store", "Thumbs.db", "desktop.ini",  # macOS Finder and Windows Explorer
    ".*.swp", ".*.swo", "*~", ".#*",  # vim swap files, backup files, Emacs lock files
    IGNORE_FILE,
)


@dataclass(frozen=True)
class _Rule:
    parts: tuple[str, ...]  # the pattern split on "/"; one part matches a name at any depth
    anchored: bool  # the pattern had a "/" inside or at its start: it matches the whole path
    folders_only: bool  # the pattern ended with "/"
    keep: bool  # a "!" line: matching entries are kept

    def matches(self, relative: str, is_dir: bool) -> bool:
        if self.folders_only and not is_dir:
            return False
        names = relative.split("/")
        if not self.anchored:
            return fnmatchcase(names[-1], self.parts[0])
        return _match_parts(self.parts, tuple(names))


def _match_parts(pattern: tuple[str, ...], names: tuple[str, ...]) -> bool:
    """gitignore-style matching by path component: ``*`` stays inside one name, ``**`` spans any."""
    if not pattern:
        return not names
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_parts(rest, names[skip:]) for skip in range(len(names) + 1))
    return bool(names) and fnmatchcase(names[0], head) and _match_parts(rest, names[1:])


def _rule(line: str) -> _Rule | None:
    text = line.rstrip("\n").rstrip("\r").strip()
    if not text or text.startswith("#"):
        return None
    keep = text.startswith("!")
    text = text[1:] if keep else text
    folders_only = text.endswith("/")
    text = text.rstrip("/")
    anchored = "/" in text  # in front or inside (`/docs/`, `raw/*.tmp`); a trailing one does not anchor
    text = text.lstrip("/")
    if not text:
        return None
    return _Rule(tuple(text.split("/")), anchored, folders_only, keep)


_DEFAULT_RULES = tuple(rule for rule in map(_rule, DEFAULT_PATTERNS) if rule is not None)


class IgnoreRules:
    """The rules of one folder input: the defaults, then the lines of its ``.orchignore``.

    Syntax of a line: blank lines and lines starting with ``#`` are skipped;
    ``!`` at the start keeps what matches; a trailing ``/`` matches folders
    only; a pattern without a ``/`` (other than a trailing one) matches a
    file's or folder's name at any depth; a pattern with one matches the path
    relative to the folder input (a leading ``/`` is optional). ``*``, ``?``
    and ``[abc]`` match within one name, ``**`` any number of folders, and
    matching is case-sensitive. A folder left out is left out with everything
    in it.
    """

    def __init__(self, lines: list[str]) -> None:
        self.rules = _DEFAULT_RULES + tuple(rule for rule in map(_rule, lines) if rule is not None)

    @classmethod
    def of(cls, folder: str) -> IgnoreRules:
        """The rules for the folder input at ``folder`` (the defaults if it has no ``.orchignore``)."""
        try:
            with open(os.path.join(folder, IGNORE_FILE), encoding="utf-8", errors="replace") as handle:
                return cls(handle.readlines())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return cls([])

    def ignored(self, relative: str, is_dir: bool) -> bool:
        """Whether the entry at POSIX path ``relative`` (inside the folder input) is left out."""
        verdict = False
        for rule in self.rules:
            if rule.matches(relative, is_dir):
                verdict = not rule.keep
        return verdict
