"""The serving request log: what a model server was asked and what it answered, for monitoring.

The log of model ``name`` is a folder of JSON Lines segments under
``<store>/serving/<name>/``, one line per answered record:
``{"at", "version", "features", "prediction"}``, ``at`` being when it was
answered, and ``"key"`` (the record's value of the version's key column, e.g.
its ``customer_id``) when the version has a key and the record gave one, so
that labels arriving later can be joined to the requests (``orch monitor
--labels``). A line without ``key`` (logged before keys were, or by a version
without one) reads the same way. A server appends its answers to one *open* segment
(``.<stem>.open``, see ``request_writer``) and *seals* it (renames it to
``<stem>.jsonl``) once it holds enough rows or spans long enough, or when the
server stops; a sealed segment is then indexed in the metadata database's
``request_segments`` with one short insert, its ``created`` being the time of
its newest request, so a window's older segments are never read. A server
leaves that insert to ``request_indexer``, so a prediction never waits on the
database. Segments written before batching hold one request each, and read
the same way.

A reader takes a line as data only when it ends in a newline and is such a
JSON object, so a line being written, or torn by a killed server, never counts.
An open segment is read along with the index (its complete lines), so
``orch monitor`` sees a request as soon as it is answered. A segment whose
server died open is sealed by the next server on the store
(``seal_abandoned``): its owner holds an ``flock`` on it while it lives, so a
live server's segment is never taken from it.

Reading trusts neither the index nor the segments: an indexed path is read
only if it names a segment inside the model's own folder (never an absolute
path, ``..`` or a symlink leading elsewhere, which a crafted ``metadata.db``
could hold), an open segment only if it is a plain file named as the server
names them, and a line that is not such a JSON object is skipped.

This module must not import pandas or fastapi at import time, and must not
decide anything about drift.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.json_values import strict_json

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, so no open segment is ever taken as abandoned
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.context import Context
    from orchestrator.lineage_db import Lineage

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
OPEN_SUFFIX = ".open"
COMPACTING_SUFFIX = ".compacting"  # a segment ``request_compaction`` writes, hidden until it is indexed
_OPEN_NAME = re.compile(r"^\.(\d{20}-\d+-[0-9a-f]{6})\.open$")  # as ``new_stem`` names them, and no other file


def segment_folder(root: Path, name: str) -> Path:
    """Where the segments of model ``name`` live (the name made safe for a path)."""
    return root / "serving" / _SAFE.sub("_", name)


def new_stem() -> str:
    """A segment's unique name, without its suffix: the time it was started, the process, and a random part."""
    return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Segment:
    """One sealed segment, as the ``request_segments`` index records it."""

    path: str  # relative to the store root
    name: str
    version: int
    rows: int
    created: float  # the time of its newest request: no row of it is later


def encode_requests(version: int, records: list[dict[str, Any]], predictions: dict[str, list[Any]],
                    at: float, keys: list[Any] | None = None) -> str:
    """The log lines of one answered request (each record and its answer), each ending in a newline.

    ``keys`` (one per record, ``None`` where a record gave none) are logged as each line's ``key``.
    """
    lines = []
    for i, record in enumerate(records):
        entry = {"at": at, "version": version, "features": record,
                 "prediction": {k: v[i] for k, v in predictions.items()}}
        if keys is not None and keys[i] is not None:
            entry["key"] = keys[i]
        try:
            lines.append(json.dumps(entry, allow_nan=False, default=str))
        except ValueError:  # a NaN the model predicted: logged as null rather than the request lost
            lines.append(json.dumps(strict_json(entry), allow_nan=False, default=str))
    return "\n".join(lines) + "\n"


def append_requests(context: Context, name: str, version: int, records: list[dict[str, Any]],
                    predictions: dict[str, list[Any]]) -> Path:
    """Write one segment for one answered request and index it; returns its path."""
    segment = write_segment(context.root, name, version, records, predictions)
    index_segments(context.lineage, [segment])
    return context.root / segment.path


def write_segment(root: Path, name: str, version: int, records: list[dict[str, Any]],
                  predictions: dict[str, list[Any]]) -> Segment:
    """Write one answered request as a sealed segment (temp file, then rename), without indexing it."""
    folder = segment_folder(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stem = new_stem()
    temp = folder / f".{stem}.tmp"
    final = folder / f"{stem}.jsonl"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(encode_requests(version, records, predictions, now))
    os.replace(temp, final)
    return Segment(str(final.relative_to(root)), name, version, len(records), now)


def index_segments(lineage: Lineage, segments: list[Segment], wait_ms: int | None = None) -> None:
    """Index sealed segments in one transaction (``wait_ms``: see ``Lineage.transaction``)."""
    with lineage.transaction(wait_ms) as c:
        c.executemany("INSERT OR REPLACE INTO request_segments (path, name, version, rows, created) "
                      "VALUES (?,?,?,?,?)", [(s.path, s.name, s.version, s.rows, s.created) for s in segments])


CAN_LOCK = fcntl is not None


def lock_open_segment(fd: int) -> bool:
    """Take the lock its writer holds on an open segment for as long as it writes; False if it is held
    (or cannot be had: without ``fcntl`` no open segment is ever taken for abandoned)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def seal_abandoned(root: Path, name: str) -> int:
    """Seal the open segments of ``name`` whose server is gone (killed, or stopped before sealing them).

    A segment is taken only when its lock is free (its writer is dead: the lock dies with it) and its
    path still names the file locked; a torn last line is cut off, and an empty segment removed, before
    the rename. The sealed segments are left for ``unindexed_segments`` to index. Returns how many.
    """
    sealed = 0
    for path in _open_segments(segment_folder(root, name)):
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # sealed meanwhile by its writer, or not ours to open
        try:
            if not lock_open_segment(fd) or not _names(path, fd):
                continue  # a live server still writes it, or another server sealed it first
            data = _read_fd(fd)
            end = data.rfind(b"\n") + 1
            if end == 0:
                path.unlink()  # nothing whole in it: no request is lost
                continue
            if end < len(data):
                os.ftruncate(fd, end)  # the line a killed server was writing
            os.replace(path, path.with_name(_OPEN_NAME.match(path.name).group(1) + ".jsonl"))  # type: ignore[union-attr]
            sealed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return sealed


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not renamed away, or replaced)."""
    try:
        named, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _open_segments(folder: Path) -> list[Path]:
    """The open segments in ``folder``: plain files named as a server names them (never a link)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(Path(e.path) for e in entries
                  if _OPEN_NAME.match(e.name) and e.is_file(follow_symlinks=False))


def open_counts(context: Context, name: str) -> dict[int, int]:
    """Requests of ``name`` in the open segments (a running server's, not sealed yet), by version."""
    counts: dict[int, int] = {}
    for path in _open_segments(segment_folder(context.root, name)):
        try:
            data = path.read_bytes()
        except OSError:
            continue  # sealed meanwhile: the index has it now
        for entry in map(parse_entry, whole_lines(data)):
            version = entry.get("version") if entry is not None else None
            if isinstance(version, int) and not isinstance(version, bool):
                counts[version] = counts.get(version, 0) + 1
    return counts


def unindexed_segments(context: Context, name: str) -> list[Segment]:
    """Sealed segments of ``name`` on disk that the index lacks: left by a server that stopped (or was
    killed) before it could index them. Their version, rows and time are read from the segment itself."""
    folder = segment_folder(context.root, name)
    try:
        # Plain strings, not a Path per file: a store logged one file per request holds millions.
        names = [e.name for e in os.scandir(folder) if e.name.endswith(".jsonl") and not e.name.startswith(".")]
    except OSError:
        return []
    if not names:
        return []
    indexed = {row[0] for row in context.lineage.conn.execute(
        "SELECT path FROM request_segments WHERE name=?", (name,))}
    prefix = str(folder.relative_to(context.root)) + os.sep
    found = []
    for path in (prefix + n for n in names):
        if path in indexed:
            continue
        file = context.root / path
        try:
            entries = [e for e in map(parse_entry, whole_lines(file.read_bytes())) if e is not None]
        except (OSError, UnicodeDecodeError):
            continue
        versions = {e.get("version") for e in entries}
        version = versions.pop() if len(versions) == 1 else None
        if not isinstance(version, int) or isinstance(version, bool):
            continue  # not a segment this server wrote: never index a file the log cannot vouch for
        times = [float(e["at"]) for e in entries if is_time(e.get("at"))]
        found.append(Segment(path, name, version, len(entries), max(times) if times else file.stat().st_mtime))
    return found


def read_requests(context: Context, name: str, *, version: int | None = None,
                  since: float | None = None, limit: int | None = None) -> tuple[pd.DataFrame, list[float]]:
    """The logged feature rows of ``name``, oldest first, and the score of each answer.

    ``version`` keeps the requests that version answered; ``since`` (Unix time) those answered since
    then, by each request's own time; ``limit`` the newest ``limit`` of them. The score is the
    answer's ``probability`` if present, else its ``prediction``.
    """
    import pandas as pd

    entries = logged_entries(context, name, version=version, since=since, limit=limit)
    rows: list[dict[str, Any]] = []
    scores: list[float] = []
    for entry in entries:
        rows.append(entry["features"])
        answer = entry.get("prediction")
        answer = answer if isinstance(answer, dict) else {}
        score = answer.get("probability", answer.get("prediction"))
        scores.append(float(score) if isinstance(score, (int, float)) else float("nan"))
    return pd.DataFrame(rows), scores


def logged_entries(context: Context, name: str, *, version: int | None = None, since: float | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
    """The logged requests of ``name`` (see ``read_requests``), oldest first, as their JSON objects.

    Sealed segments are read newest first by their index row, whose ``created`` is the time of the
    segment's newest request, and the reading stops once ``limit`` requests are at least as new as
    anything an older segment holds; the open segments (the requests a running server has not sealed
    yet) are read whole. The index is read before the open segments are listed, so a segment sealed
    in between is missed by this reading, never counted twice.
    """
    sql = "SELECT path, created FROM request_segments WHERE name=?"
    args: list[Any] = [name]
    if version is not None:
        sql += " AND version=?"
        args.append(version)
    if since is not None:
        sql += " AND created>=?"
        args.append(since)
    sql += " ORDER BY created DESC"
    indexed = context.lineage.conn.execute(sql, args).fetchall()
    folder = segment_folder(context.root, name)
    kept: list[tuple[float, int, dict[str, Any]]] = []  # (at, order read, entry)
    newest: list[float] = []  # a min-heap of the ``limit`` latest times kept so far

    def keep(data: bytes, fallback: float) -> None:
        for entry in map(parse_entry, whole_lines(data)):
            if entry is None or (version is not None and entry.get("version") != version):
                continue
            at = float(entry["at"]) if is_time(entry.get("at")) else fallback
            if since is not None and at < since:
                continue
            kept.append((at, len(kept), entry))
            if limit is not None:
                (heapq.heappush if len(newest) < limit else heapq.heappushpop)(newest, at)

    for path in _open_segments(folder):
        try:
            keep(path.read_bytes(), path.stat().st_mtime)
        except OSError:
            continue  # sealed meanwhile: this reading misses it (the index was read before)
    for path, created in indexed:
        created = float(created) if is_time(created) else float("inf")  # a crafted row: read, never trusted
        if limit is not None and len(newest) >= limit and newest[0] >= created:
            break  # every request older segments hold is older than the ``limit`` kept
        segment = segment_file(context.root, folder, path)
        if segment is None:
            continue  # not a segment of this model: never read a file the index merely names
        try:
            keep(_read_segment(segment), created)
        except OSError:
            continue  # a segment removed by hand: the rest of the log is still usable
    kept.sort(key=lambda item: (item[0], item[1]))
    if limit is not None:
        kept = kept[-limit:] if limit else []
    return [entry for _, _, entry in kept]


def _read_segment(segment: Path) -> bytes:
    """A sealed segment's bytes; for a compacted one indexed but not yet renamed, its hidden file's."""
    try:
        return segment.read_bytes()
    except FileNotFoundError:
        hidden = segment.with_name(f".{segment.stem}{COMPACTING_SUFFIX}")
        if hidden.is_symlink():
            raise
        return hidden.read_bytes()  # its first line names its sources, and is no request


def whole_lines(data: bytes) -> list[str]:
    """The lines of ``data`` that end in a newline (a line still being written, or torn, does not), decoded."""
    end = data.rfind(b"\n")
    if end < 0:
        return []
    try:
        return [line for line in data[:end].decode("utf-8").split("\n") if line.strip()]
    except UnicodeDecodeError:  # a damaged line costs itself, not the rest of its segment
        lines = []
        for raw in data[:end].split(b"\n"):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                continue
        return [line for line in lines if line.strip()]


def is_time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def segment_file(root: Path, folder: Path, path: object) -> Path | None:
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


def parse_entry(line: str) -> dict[str, Any] | None:
    """One logged request line, or None if it is not ``{"features": {...}, ...}``."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("features"), dict):
        return None
    return entry
