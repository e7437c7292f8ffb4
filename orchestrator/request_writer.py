"""The model server's side of the request log: answered requests appended to one open segment.

Writing a file and an index row per request made a server answering 50
requests a second leave 30 million files and rows in a week, which every
listing, ``orch monitor``, ``orch cache gc`` and backup then walked. So a
``RequestWriter`` appends each answered request (its lines, in one ``write``)
to an open segment, ``<store>/serving/<name>/.<stem>.open``, and seals it
(renames it to ``<stem>.jsonl``, then hands it to ``request_indexer``) once
it holds ``ROLL_ROWS`` rows, once it is ``ROLL_SECONDS`` old (checked when a
request comes, and by the server's timer, ``seal_if_old``, every
``timer_seconds``, so an idle server's last requests are sealed and indexed
too instead of waiting for the next request), and when the server stops. The lines are in the file as soon as the
answer leaves, so a killed server (``kill -9``, out of memory) loses at most
the line it was writing, which no reader takes; the next server on the store
seals what it left (``request_log.seal_abandoned``). A power cut can lose what
the system had not yet written to the disk, as for any file.

While the writer lives it holds an exclusive ``flock`` on its open segment,
taken before the file gets the name readers and the next server look for, so
a live segment is never sealed under it.

This module must not import pandas or fastapi, and must not decide anything about drift.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from orchestrator.request_log import (
    CAN_LOCK,
    OPEN_SUFFIX,
    Segment,
    encode_requests,
    lock_open_segment,
    new_stem,
    segment_folder,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

log = logging.getLogger("orchestrator.serve")
_RENAMES_OPEN_FILES = os.name != "nt"  # Windows renames no open file, so there it is closed first

# Sealing costs a rename and one index row (about what logging a single request cost before), so
# either bound keeps it off the answers: 10,000 rows of a three-feature model are 1.5 MB, a segment
# every 3 minutes at 50 requests a second (3,000 a week), and five minutes keep a quiet server to
# 288 segments a day. Figures in docs/lifecycle.md.
ROLL_ROWS = 10_000
ROLL_SECONDS = 300.0
TIMER_FLOOR = 1.0  # seconds: the server's sealing timer wakes at most once a second


def timer_seconds(max_age: float) -> float:
    """How often the server's timer looks for an open segment past ``max_age``: a quarter of it, so a
    segment is sealed at most a quarter late, and never more often than ``TIMER_FLOOR``."""
    return max(max_age / 4, TIMER_FLOOR)


class RequestWriter:
    """Appends one model version's answered requests to an open segment and seals it by size and age.

    ``on_sealed`` receives each sealed segment (the server passes ``SegmentIndexer.add``); it is
    called outside the writer's lock, so a slow index never holds up another request's write.
    """

    def __init__(self, root: Path, name: str, version: int, on_sealed: Callable[[Segment], None], *,
                 rows: int = ROLL_ROWS, seconds: float = ROLL_SECONDS) -> None:
        self._root = root
        self._name = name
        self._version = version
        self._on_sealed = on_sealed
        self._max_rows = rows
        self._max_age = seconds
        self._lock = threading.Lock()  # over the open segment: one request writes at a time
        self._fd: int | None = None
        self._stem = ""
        self._size = 0  # bytes of whole lines in the open segment
        self._rows = 0
        self._opened = 0.0  # time.monotonic() of its first request
        self._newest = 0.0  # time.time() of its newest request

    def append(self, records: list[dict[str, Any]], predictions: dict[str, list[Any]],
               keys: list[Any] | None = None) -> None:
        """Log one answered request (``keys``: each record's key value, see ``encode_requests``).

        Raises:
            OSError: the segment could not be written (a full disk); nothing of this request is in it.
        """
        at = time.time()
        data = encode_requests(self._version, records, predictions, at, keys).encode("utf-8")
        sealed: list[Segment | None] = []
        with self._lock:
            if self._fd is not None and time.monotonic() - self._opened >= self._max_age:
                sealed.append(self._seal())
            if self._fd is None:
                self._open()
            self._write(data)
            self._rows += len(records)
            self._newest = max(self._newest, at)
            if self._rows >= self._max_rows:
                sealed.append(self._seal())
        for segment in sealed:
            if segment is not None:
                self._on_sealed(segment)

    def seal_if_old(self) -> None:
        """Seal the open segment if it is older than its age bound (the server's timer calls this, so an
        idle server's segment is sealed without a request to notice its age)."""
        with self._lock:
            old = self._fd is not None and time.monotonic() - self._opened >= self._max_age
            segment = self._seal() if old else None
        if segment is not None:
            self._on_sealed(segment)

    def close(self) -> None:
        """Seal the open segment, if it holds any request (the server calls this when it stops)."""
        with self._lock:
            segment = self._seal() if self._fd is not None else None
        if segment is not None:
            self._on_sealed(segment)

    @property
    def open_path(self) -> Path | None:
        """The open segment's path, while there is one."""
        return None if self._fd is None else self._folder / f".{self._stem}{OPEN_SUFFIX}"

    @property
    def _folder(self) -> Path:
        return segment_folder(self._root, self._name)

    def _open(self) -> None:
        """Start a segment: created and locked under a name readers skip, then given its open name."""
        self._folder.mkdir(parents=True, exist_ok=True)
        stem = new_stem()
        opened = self._folder / f".{stem}{OPEN_SUFFIX}"
        # Without a lock (Windows) nothing seals another server's segment, and no open file is renamed.
        starting = self._folder / f".{stem}.starting" if CAN_LOCK else opened
        fd = os.open(starting, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        try:
            if starting != opened:
                lock_open_segment(fd)  # held until the segment is sealed, or the process dies
                os.replace(starting, opened)
        except BaseException:
            os.close(fd)
            starting.unlink(missing_ok=True)
            raise
        self._fd, self._stem, self._size, self._rows = fd, stem, 0, 0
        self._opened, self._newest = time.monotonic(), 0.0

    def _write(self, data: bytes) -> None:
        """Append ``data`` whole, or cut the segment back to its last whole line and raise."""
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            try:
                os.ftruncate(self._fd, self._size)  # no half a request left for the next one to join
            except OSError:
                pass  # a torn line stays at the end; no reader takes it, and sealing cuts it off
            raise
        self._size += len(data)

    def _seal(self) -> Segment | None:
        """Rename the open segment to its sealed name, then let go of it; returns what to index.

        A segment that cannot be renamed stays open-named for the next server to seal (None then).
        """
        assert self._fd is not None
        fd, self._fd = self._fd, None
        opened = self._folder / f".{self._stem}{OPEN_SUFFIX}"
        final = self._folder / f"{self._stem}.jsonl"
        try:
            if not self._size:
                opened.unlink(missing_ok=True)  # its only write failed: nothing to keep
                return None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)  # a torn line a failed write could not cut off then
            if _RENAMES_OPEN_FILES:
                os.replace(opened, final)  # while still locked: nobody seals it meanwhile
        except OSError as exc:
            log.warning("served requests stay in %s, not sealed (%s); the next `orch serve` of this store "
                        "seals them", opened, exc.strerror or exc)
            return None
        finally:
            os.close(fd)
        if not _RENAMES_OPEN_FILES:  # pragma: no cover - Windows
            os.replace(opened, final)
        return Segment(str(final.relative_to(self._root)), self._name, self._version, self._rows, self._newest)
