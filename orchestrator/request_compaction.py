"""Fold many small sealed request-log segments into few, so a store logged one file per request shrinks.

Before batching, ``orch serve`` wrote one segment (a file and an index row) per
answered request: a store from then can hold millions, which every listing,
server start and backup walks. ``compact_segments`` (run by ``orch cache gc``)
rewrites the segments of a model holding fewer than ``SMALL`` rows into
segments of up to ``ROLL_ROWS`` rows, in this order, so that a kill at any
point loses no request and counts none twice:

1. the new segment is written whole (and synced) under a hidden name,
   ``.<stem>.compacting``, whose first line names its sources;
2. one transaction indexes ``<stem>.jsonl`` and drops the sources' rows: the
   commit point;
3. the source files are removed;
4. the hidden file is renamed ``<stem>.jsonl``.

Killed before 2, the sources are still what the index names, and the hidden
file is removed by the next compaction or server start. Killed after 2, the
hidden file is the segment: a reader that finds ``<stem>.jsonl`` indexed but
not there yet reads it (``request_log``), and ``finish_compactions`` does 3
and 4. Both a compaction and a server's indexing of left-over segments hold
the folder's ``.compaction.lock``, so no server indexes a source again as
left over between 2 and 3.

This module must not import pandas or fastapi, and must not decide anything about drift.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.request_log import (
    COMPACTING_SUFFIX,
    is_time,
    new_stem,
    parse_entry,
    segment_file,
    segment_folder,
    whole_lines,
)
from orchestrator.request_writer import ROLL_ROWS

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: every lock is granted, as in ``locks``
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from orchestrator.context import Context

SMALL = 1_000  # a segment of fewer rows is compacted: one request's, or what a server held when it stopped
LOCK_NAME = ".compaction.lock"


@contextmanager
def compaction_lock(folder: Path) -> Iterator[bool]:
    """Hold the folder's compaction lock if it is free (yields True), else yield False at once."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield False
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
        yield True
    finally:
        os.close(fd)  # lets go of the lock too


def compact_segments(context: Context, name: str, *, rows: int = ROLL_ROWS) -> tuple[int, int]:
    """Fold the small sealed segments of ``name`` into segments of up to ``rows`` rows.

    Returns how many segments were folded and how many written (0, 0 while another compaction runs).
    """
    folder = segment_folder(context.root, name)
    if not folder.is_dir():
        return 0, 0
    folded = written = 0
    with compaction_lock(folder) as held:
        if not held:
            return 0, 0
        finish_compactions(context, name)
        for version, chunk in _chunks(context, name, rows):
            done = _compact(context, folder, name, version, chunk)
            if done:
                folded, written = folded + done, written + 1
    return folded, written


def small_segments(context: Context, name: str) -> int:
    """How many sealed segments of ``name`` a compaction would fold (for ``gc --dry-run``)."""
    return sum(len(chunk) for _, chunk in _chunks(context, name, ROLL_ROWS))


def _chunks(context: Context, name: str, rows: int) -> Iterator[tuple[int, list[tuple[str, int]]]]:
    """The small segments of ``name``, oldest first, in runs of one version of up to ``rows`` rows (two or more)."""
    chunk: list[tuple[str, int]] = []
    current: Any = None
    total = 0
    for path, version, count in context.lineage.conn.execute(
            "SELECT path, version, rows FROM request_segments WHERE name=? AND rows<? ORDER BY version, created",
            (name, SMALL)).fetchall():
        if chunk and (version != current or total + count > rows):
            if len(chunk) > 1:
                yield current, chunk
            chunk, total = [], 0
        current = version
        chunk.append((path, count))
        total += count
    if len(chunk) > 1:
        yield current, chunk


def _compact(context: Context, folder: Path, name: str, version: int, chunk: list[tuple[str, int]]) -> int:
    """Write one segment of the chunk's requests, index it in place of its sources, and remove them."""
    lines: list[str] = []
    sources: list[str] = []
    newest = 0.0
    for path, _ in chunk:
        file = segment_file(context.root, folder, path)
        if file is None:
            continue  # not a segment of this model: left as it is, and not read
        try:
            data = file.read_bytes()
        except OSError:
            continue  # removed by hand: its row stays, as reading skips it
        for line in whole_lines(data):
            entry = parse_entry(line)
            if entry is not None and entry.get("version") == version:
                lines.append(line)
                newest = max(newest, float(entry["at"])) if is_time(entry.get("at")) else newest
        sources.append(path)
    if len(sources) < 2:
        return 0
    stem = new_stem()
    hidden = folder / f".{stem}{COMPACTING_SUFFIX}"
    header = json.dumps({"compacted": [Path(p).name for p in sources]})
    try:
        with open(hidden, "w", encoding="utf-8") as f:
            f.write(header + "\n" + "".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())  # the sources go once this is indexed: it must outlive a power cut
        _commit(context, str(folder.relative_to(context.root) / f"{stem}.jsonl"), name, version, len(lines),
                newest, sources)
    except Exception:  # a full disk, a locked database: no half compaction left (a kill leaves it to the next)
        hidden.unlink(missing_ok=True)
        raise
    _finish(folder, hidden, [Path(p).name for p in sources])
    return len(sources)


def _commit(context: Context, path: str, name: str, version: int, rows: int, created: float,
            sources: list[str]) -> None:
    """Index the new segment and drop its sources' rows, in one transaction: the compaction's commit point."""
    with context.lineage.transaction() as c:
        c.execute("INSERT OR REPLACE INTO request_segments (path, name, version, rows, created) VALUES (?,?,?,?,?)",
                  (path, name, version, rows, created))
        c.executemany("DELETE FROM request_segments WHERE path=?", [(p,) for p in sources])


def _finish(folder: Path, hidden: Path, sources: list[str]) -> None:
    """Remove the sources of a committed compaction, then give its segment its name."""
    for source in sources:
        if "/" not in source and os.sep not in source and source.endswith(".jsonl"):
            (folder / source).unlink(missing_ok=True)
    _name_segment(hidden)


def _name_segment(hidden: Path) -> None:
    os.replace(hidden, hidden.with_name(hidden.name[1:-len(COMPACTING_SUFFIX)] + ".jsonl"))


def finish_compactions(context: Context, name: str) -> None:
    """Finish the compactions of ``name`` a kill interrupted, or drop those that never committed.

    Only call it holding the folder's compaction lock (``compaction_lock``).
    """
    folder = segment_folder(context.root, name)
    try:
        hidden = [folder / n for n in os.listdir(folder) if n.startswith(".") and n.endswith(COMPACTING_SUFFIX)]
    except OSError:
        return
    prefix = str(folder.relative_to(context.root)) + os.sep
    for file in hidden:
        path = prefix + file.name[1:-len(COMPACTING_SUFFIX)] + ".jsonl"
        committed = context.lineage.conn.execute("SELECT 1 FROM request_segments WHERE path=?", (path,)).fetchone()
        if committed is None:
            file.unlink(missing_ok=True)  # killed before its commit: the sources are still the log
            continue
        try:
            with open(file, encoding="utf-8") as f:
                header = json.loads(f.readline())
        except (OSError, ValueError):
            continue
        sources = header.get("compacted") if isinstance(header, dict) else None
        if isinstance(sources, list):
            _finish(folder, file, [s for s in sources if isinstance(s, str)])
