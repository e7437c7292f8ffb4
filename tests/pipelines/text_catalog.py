"""A catalog of paths passed as text, as Kedro's users keep one: the steps' annotations say which are paths.

No ``from __future__ import annotations`` here: ``dict[str, Path]`` and
``Optional[Path]`` are then objects, not text, and must be read as paths all the same.
"""

from pathlib import Path
from typing import Optional

from orchestrator import pipeline, step


@step
def annotated(catalog: dict[str, Path], extra: list[Path], maybe: Optional[Path] = None) -> int:  # noqa: UP045
    paths = [*catalog.values(), *extra, *([maybe] if maybe else [])]
    return sum(len(Path(p).read_text().splitlines()) for p in paths)


@step
def plain(catalog: dict) -> int:
    return sum(len(Path(p).read_text().splitlines()) for p in catalog.values())


@pipeline
def text_catalog(catalog: dict = {"a": "a.csv"}, extra: list = ["b.csv"], maybe: Optional[str] = "c.csv"):  # noqa: B006, UP045
    return annotated(catalog, extra, maybe), plain(catalog)
