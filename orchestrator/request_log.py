"""The serving request log: what a model server was asked and what it answered, for monitoring.

Each answered request becomes one append-only JSON Lines segment under
``<store>/serving/<model>/``, written to a temporary file and renamed into
place, so a reader never sees half a segment; its path is then indexed in the
metadata database with one short insert, so the server never holds the write
lock for longer than that. The server leaves that insert to ``request_indexer``, so a prediction never
waits on the database. Each line is ``{"at", "version", "features",
"prediction"}``.

Reading trusts neither the index nor the segments: an indexed path is read
only if it names a segment inside the model's own folder (never an absolute
path, ``..`` or a symlink leading elsewhere, which a crafted ``metadata.db``
could hold), and a line that is not such a JSON object is skipped.

This module must not import pandas or fastapi at import time, and must not
decide anything about drift.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.json_values import strict_json

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.context import Context
    from orchestrator.lineage import Lineage

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def segment_folder(root: Path, name: str) -> Path:
    """Where the segments of model ``name`` live (the name made safe for a path)."""
    return root / "serving" / _SAFE.sub("_", name)


@dataclass(frozen=True)
class Segment:
    """One written segment, as the ``request_segments`` index records it."""

    path: str  # relative to the store root
    name: str
    version: int
    rows: int
    created: float


def append_requests(context: Context, name: str, version: int, records: list[dict[str, Any]],
                    predictions: dict[str, list[Any]]) -> Path:
    """Write one segment for one answered request and index it; returns its path."""
    segment = write_segment(context.root, name, version, records, predictions)
    index_segments(context.lineage, [segment])
    return context.root / segment.path


def write_segment(root: Path, name: str, version: int, records: list[dict[str, Any]],
                  predictions: dict[str, list[Any]]) -> Segment:
    """Write one answered request as a segment file (temp file, then rename), without indexing it."""
    folder = segment_folder(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    lines = []
    for i, record in enumerate(records):
        entry = {"at": now, "version": version, "features": record,
                 "prediction": {k: v[i] for k, v in predictions.items()}}
        try:
            lines.append(json.dumps(entry, allow_nan=False, default=str))
        except ValueError:  # a NaN the model predicted: logged as null rather than the request lost
            lines.append(json.dumps(strict_json(entry), allow_nan=False, default=str))
    stem = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}"
    temp = folder / f".{stem}.tmp"
    final = folder / f"{stem}.jsonl"
    with open(temp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(temp, final)
    return Segment(str(final.relative_to(root)), name, version, len(records), now)


def index_segments(lineage: Lineage, segments: list[Segment], wait_ms: int | None = None) -> None:
    """Index written segments in one transaction (``wait_ms``: see ``Lineage.transaction``)."""
    with lineage.transaction(wait_ms) as c:
        c.executemany("INSERT OR REPLACE INTO request_segments (path, name, version, rows, created) "
                      "VALUES (?,?,?,?,?)", [(s.path, s.name, s.version, s.rows, s.created) for s in segments])


def unindexed_segments(context: Context, name: str) -> list[Segment]:
    """Segments of ``name`` on disk that the index lacks: written by a server that stopped (or was
    killed) before it could index them. Their version and rows are read from the segment itself."""
    folder = segment_folder(context.root, name)
    try:
        files = [p for p in folder.iterdir() if p.suffix == ".jsonl" and not p.name.startswith(".")]
    except OSError:
        return []
    if not files:
        return []
    indexed = {row[0] for row in context.lineage.conn.execute(
        "SELECT path FROM request_segments WHERE name=?", (name,))}
    found = []
    for file in files:
        path = str(file.relative_to(context.root))
        if path in indexed:
            continue
        try:
            entries = [_entry(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError):
            continue
        versions = {e.get("version") for e in entries if e is not None}
        version = versions.pop() if len(versions) == 1 else None
        if not isinstance(version, int) or isinstance(version, bool):
            continue  # not a segment this server wrote: never index a file the log cannot vouch for
        when = next(e for e in entries if e is not None).get("at")
        found.append(Segment(path, name, version, sum(e is not None for e in entries),
                             float(when) if isinstance(when, (int, float)) else file.stat().st_mtime))
    return found


def read_requests(context: Context, name: str, *, version: int | None = None,
                  since: float | None = None, limit: int | None = None) -> tuple[pd.DataFrame, list[float]]:
    """The logged feature rows of ``name`` (newest ``limit`` rows) and the score of each answer.

    The score is the answer's ``probability`` if present, else its ``prediction``.
    """
    import pandas as pd


    sql = "SELECT path FROM request_segments WHERE name=?"
    args: list[Any] = [name]
    if version is not None:
        sql += " AND version=?"
        args.append(version)
    if since is not None:
        sql += " AND created>=?"
        args.append(since)
    sql += " ORDER BY created DESC"
    rows: list[dict[str, Any]] = []
    scores: list[float] = []
    folder = segment_folder(context.root, name)
    for (path,) in context.lineage.conn.execute(sql, args).fetchall():
        segment = _segment_file(context.root, folder, path)
        if segment is None:
            continue  # not a segment of this model: never read a file the index merely names
        try:
            text = segment.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # a segment removed by hand: the rest of the log is still usable
        batch = [_entry(line) for line in text.splitlines() if line.strip()]
        for entry in reversed(batch):
            if entry is None:
                continue
            rows.append(entry["features"])
            answer = entry.get("prediction")
            answer = answer if isinstance(answer, dict) else {}
            score = answer.get("probability", answer.get("prediction"))
            scores.append(float(score) if isinstance(score, (int, float)) else float("nan"))
        if limit is not None and len(rows) >= limit:
            break
    if limit is not None:
        rows, scores = rows[:limit], scores[:limit]
    rows.reverse()
    scores.reverse()
    return pd.DataFrame(rows), scores


def _segment_file(root: Path, folder: Path, path: object) -> Path | None:
    """The segment an indexed ``path`` names, if it is a ``.jsonl`` file in ``folder``; else None."""
    if not isinstance(path, str) or "\0" in path or not path.endswith(".jsonl"):
        return None
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    candidate = root / relative
    try:
        # resolve() follows symlinks: a segment that is a link to a file elsewhere is refused,
        # while a serving folder the user moved and linked still reads.
        if candidate.resolve().parent != folder.resolve():
            return None
    except (OSError, RuntimeError):
        return None
    return candidate


def _entry(line: str) -> dict[str, Any] | None:
    """One logged request line, or None if it is not ``{"features": {...}, ...}``."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("features"), dict):
        return None
    return entry
