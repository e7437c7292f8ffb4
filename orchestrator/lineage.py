"""The metadata database: runs, steps, attempts, artifacts, their edges, and the cache index.

One SQLite file (``<store>/metadata.db``) in WAL mode. Only ``orch`` processes
(a run's driver, the CLI) open it; workers never do, and a connection is
never used across ``fork`` (it is reopened when the pid changes). Writes that
read first use ``BEGIN IMMEDIATE`` and a busy timeout, so concurrent runs wait
for each other instead of failing with "database is locked".

This module stores and queries records; it decides nothing about caching
and never touches artifact objects.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import NotFoundError, StoreError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, file TEXT, params TEXT,
    status TEXT NOT NULL, started REAL NOT NULL, ended REAL,
    user TEXT, host TEXT, pid INTEGER, pid_start TEXT, git_commit TEXT,
    python TEXT, packages TEXT, executor TEXT, outputs TEXT, error TEXT, metrics TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, node TEXT NOT NULL, step TEXT NOT NULL, site TEXT,
    key TEXT, key_parts TEXT, status TEXT NOT NULL, reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, started REAL, ended REAL, duration REAL, error TEXT,
    PRIMARY KEY (run_id, node)
);
CREATE INDEX IF NOT EXISTS steps_node ON steps(node);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, node TEXT NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, started REAL, ended REAL, error TEXT, traceback TEXT,
    stdout TEXT, stderr TEXT, logs TEXT,
    PRIMARY KEY (run_id, node, attempt)
);
CREATE TABLE IF NOT EXISTS artifacts (
    digest TEXT PRIMARY KEY, type TEXT, materializer TEXT, size INTEGER,
    checksum TEXT, meta TEXT, inline BLOB, created REAL
);
CREATE TABLE IF NOT EXISTS edges (
    run_id TEXT NOT NULL, node TEXT NOT NULL, direction TEXT NOT NULL,
    name TEXT NOT NULL, digest TEXT NOT NULL, path TEXT
);
CREATE INDEX IF NOT EXISTS edges_step ON edges(run_id, node);
CREATE INDEX IF NOT EXISTS edges_digest ON edges(digest, direction);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, outputs TEXT NOT NULL, run_id TEXT, node TEXT, created REAL
);
CREATE TABLE IF NOT EXISTS file_memo (memo_key TEXT PRIMARY KEY, digest TEXT NOT NULL);
"""

_JSON_COLUMNS = frozenset({"params", "packages", "outputs", "metrics"})

# Migrations from version N to N+1, applied in order inside one transaction.
_MIGRATIONS: dict[int, str] = {}


@dataclass(frozen=True)
class CachedOutput:
    """One output recorded under a cache key: its name, digest and whether it is inline."""

    name: str
    digest: str
    inline: bool


@dataclass
class StepRecord:
    """Everything recorded about one node in one run."""

    run_id: str
    node: str
    step: str
    site: str
    status: str
    reason: str = ""
    key: str | None = None
    key_parts: dict[str, Any] | None = None
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    inputs: list[tuple[str, str]] = field(default_factory=list)   # (input name, digest)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (output name, digest)
    files: list[tuple[str, tuple[str, str]]] = field(default_factory=list)  # (input name, (path, digest))

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    status: str
    started: float
    ended: float
    error: str | None = None
    traceback: str | None = None
    stdout: str = ""
    stderr: str = ""
    logs: str = ""


def process_start_token(pid: int) -> str:
    """A token that tells a live process from a later one that reused its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, token: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not token or process_start_token(pid) in ("", token)


class Lineage:
    """The metadata database of one store."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._pending: list[StepRecord] = []

    # -- connection ---------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            # A connection inherited through fork is abandoned, never used.
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the metadata database {self.path}: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=OFF")
        self._migrate(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row and int(row[0]) == SCHEMA_VERSION:
                return  # the common case: no write lock needed
        except sqlite3.OperationalError:
            pass  # no meta table yet: a new store
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store at {self.path.parent} was written by a newer orchestrator "
                    f"(schema {version} > {SCHEMA_VERSION}). Upgrade orchestrator."
                )
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                version += 1
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (``BEGIN IMMEDIATE``), so it never deadlocks."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self.flush()
            self._conn.close()
        self._conn = None

    # -- runs ---------------------------------------------------------------

    def start_run(self, run: dict[str, Any]) -> None:
        run = {k: json.dumps(v, default=str) if k in _JSON_COLUMNS and v is not None else v
               for k, v in run.items()}
        cols = ", ".join(run)
        marks = ", ".join("?" for _ in run)
        with self.transaction() as c:
            c.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", [_sql(v) for v in run.values()])

    def finish_run(self, run_id: str, status: str, *, outputs: Any = None, error: str | None = None) -> None:
        self.flush()
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status=?, ended=?, outputs=?, error=? WHERE run_id=?",
                (status, time.time(), None if outputs is None else json.dumps(outputs), error, run_id),
            )

    def set_run_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        with self.transaction() as c:
            row = c.execute("SELECT metrics FROM runs WHERE run_id=?", (run_id,)).fetchone()
            merged = {**json.loads(row[0] or "{}"), **metrics} if row else metrics
            c.execute("UPDATE runs SET metrics=? WHERE run_id=?", (json.dumps(merged), run_id))

    def mark_dead_runs(self) -> list[str]:
        """Mark ``running`` runs whose process is gone as ``interrupted``; return their ids."""
        host = os.uname().nodename
        rows = self.conn.execute(
            "SELECT run_id, pid, pid_start FROM runs WHERE status='running' AND host=?", (host,)
        ).fetchall()
        dead = [r[0] for r in rows if r[1] != os.getpid() and not process_alive(r[1], r[2] or "")]
        if dead:
            with self.transaction() as c:
                for run_id in dead:
                    c.execute("UPDATE runs SET status='interrupted', ended=COALESCE(ended, ?) "
                              "WHERE run_id=? AND status='running'", (time.time(), run_id))
                    c.execute("UPDATE steps SET status='interrupted', reason=? "
                              "WHERE run_id=? AND status='running'", ("the run's process died", run_id))
        return dead

    def resolve_run(self, ref: str) -> str:
        """The full run id for an id or unique prefix; ``latest`` is the newest run."""
        if ref in ("latest", "last", "-"):
            row = self.conn.execute("SELECT run_id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
            if not row:
                raise NotFoundError("there are no runs in this store yet. Start one with `orch run FILE`.")
            return str(row[0])
        rows = self.conn.execute(
            "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? LIMIT 2", (ref, ref + "\uffff")
        ).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
        if len(rows) > 1:
            raise NotFoundError(f"run id '{ref}' is ambiguous. Give more characters (see `orch runs`).")
        raise NotFoundError(f"no run '{ref}' in this store. List runs with `orch runs`.")

    def run(self, run_id: str) -> dict[str, Any]:
        row = self._dict_row("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if row is None:
            raise NotFoundError(f"no run '{run_id}' in this store. List runs with `orch runs`.")
        for key in ("params", "packages", "outputs", "metrics"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def runs(self, limit: int | None = None, pipeline: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if pipeline:
            sql += " WHERE pipeline=?"
            args.append(pipeline)
        sql += " ORDER BY started DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self._dict_rows(sql, args):
            for key in ("params", "packages", "outputs", "metrics"):
                row[key] = json.loads(row[key]) if row[key] else None
            out.append(row)
        return out

    # -- steps --------------------------------------------------------------

    def mark_running(self, record: StepRecord) -> None:
        """Record that a node started, so a crash leaves it visibly ``interrupted``."""
        self._pending.append(record)
        self.flush()

    def record_step(self, record: StepRecord, attempts: Iterable[AttemptRecord] = (),
                    artifacts: Iterable[Any] = (), cache_entry: list[CachedOutput] | None = None) -> None:
        """Commit a finished node: its row, attempts, new artifacts, edges and cache entry.

        Queued records of cached nodes go into the same transaction, so a
        finished step is durable before its dependents start.
        """
        pending, self._pending = self._pending, []
        with self.transaction() as c:
            for queued in pending:
                self._write_step(c, queued)
            self._write_step(c, record)
            for a in attempts:
                c.execute(
                    "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (record.run_id, record.node, a.attempt, a.status, a.started, a.ended, a.error,
                     a.traceback, a.stdout or None, a.stderr or None, a.logs or None),
                )
            for info in artifacts:
                c.execute(
                    "INSERT OR IGNORE INTO artifacts VALUES (?,?,?,?,?,?,?,?)",
                    (info.digest, info.type_name, info.materializer, info.size, info.checksum,
                     json.dumps(info.meta) if info.meta else None, info.inline, time.time()),
                )
            if cache_entry is not None and record.key:
                c.execute(
                    "INSERT OR REPLACE INTO cache VALUES (?,?,?,?,?)",
                    (record.key, json.dumps([[o.name, o.digest, o.inline] for o in cache_entry]),
                     record.run_id, record.node, time.time()),
                )

    def queue_step(self, record: StepRecord) -> None:
        """Queue the record of a node that needed no work (cached, skipped); written by ``flush``."""
        self._pending.append(record)
        if len(self._pending) >= 512:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        with self.transaction() as c:
            for record in pending:
                self._write_step(c, record)

    @staticmethod
    def _write_step(c: sqlite3.Connection, r: StepRecord) -> None:
        c.execute(
            "INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (r.run_id, r.node, r.step, r.site, r.key, json.dumps(r.key_parts) if r.key_parts else None,
             r.status, r.reason, r.attempts, r.started, r.ended, r.duration, r.error),
        )
        if r.inputs or r.outputs or r.files:
            c.execute("DELETE FROM edges WHERE run_id=? AND node=?", (r.run_id, r.node))
            c.executemany(
                "INSERT INTO edges VALUES (?,?,?,?,?,?)",
                [(r.run_id, r.node, "in", n, d, None) for n, d in r.inputs]
                + [(r.run_id, r.node, "in", n, d, p) for n, (p, d) in r.files]
                + [(r.run_id, r.node, "out", n, d, None) for n, d in r.outputs],
            )

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._dict_rows("SELECT * FROM steps WHERE run_id=? ORDER BY rowid", (run_id,))
        edges: dict[str, dict[str, list[dict[str, str]]]] = {}
        for node, direction, name, digest, path in self.conn.execute(
            "SELECT node, direction, name, digest, path FROM edges WHERE run_id=? ORDER BY rowid", (run_id,)
        ):
            edge = {"name": name, "hash": digest, **({"path": path} if path else {})}
            edges.setdefault(node, {"in": [], "out": []})[direction].append(edge)
        for row in rows:
            row["key_parts"] = json.loads(row["key_parts"]) if row["key_parts"] else None
            row["inputs"] = edges.get(row["node"], {}).get("in", [])
            row["outputs"] = edges.get(row["node"], {}).get("out", [])
        return rows

    def attempts(self, run_id: str, node: str) -> list[dict[str, Any]]:
        return self._dict_rows(
            "SELECT * FROM attempts WHERE run_id=? AND node=? ORDER BY attempt", (run_id, node)
        )

    def last_key_parts(self, pipeline: str, node: str) -> dict[str, Any] | None:
        """Key parts of the most recent recorded key for ``node`` of ``pipeline``."""
        row = self.conn.execute(
            "SELECT s.key_parts FROM steps s JOIN runs r ON r.run_id = s.run_id "
            "WHERE r.pipeline=? AND s.node=? AND s.key_parts IS NOT NULL "
            "AND s.status IN ('ran', 'cached') ORDER BY r.started DESC LIMIT 1",
            (pipeline, node),
        ).fetchone()
        return json.loads(row[0]) if row else None

    # -- cache index and artifacts -----------------------------------------

    def lookup(self, key: str) -> list[CachedOutput] | None:
        row = self.conn.execute("SELECT outputs FROM cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return [CachedOutput(n, d, bool(i)) for n, d, i in json.loads(row[0])]

    def forget(self, key: str) -> None:
        """Drop a cache entry whose artifacts turned out missing or damaged."""
        with self.transaction() as c:
            c.execute("DELETE FROM cache WHERE key=?", (key,))

    def forget_artifact(self, digest: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM cache WHERE outputs LIKE ?", (f'%"{digest}"%',))

    def artifact_row(self, digest: str) -> dict[str, Any] | None:
        row = self._dict_row("SELECT * FROM artifacts WHERE digest=?", (digest,))
        if row is not None:
            row["meta"] = json.loads(row["meta"]) if row["meta"] else {}
        return row

    def artifact_rows(self) -> list[dict[str, Any]]:
        rows = self._dict_rows("SELECT * FROM artifacts ORDER BY created", ())
        for row in rows:
            row["meta"] = json.loads(row["meta"]) if row["meta"] else {}
        return rows

    def resolve_digest(self, prefix: str) -> str:
        prefix = prefix.lower()
        rows = self.conn.execute(
            "SELECT digest FROM artifacts WHERE digest >= ? AND digest < ? LIMIT 2", (prefix, prefix + "g")
        ).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
        if len(rows) > 1:
            raise NotFoundError(f"digest prefix '{prefix}' is ambiguous. Give more characters.")
        raise NotFoundError(f"no artifact with digest '{prefix}' in this store. See `orch cache ls`.")

    def producers(self, digest: str) -> list[tuple[str, str, str]]:
        """(run_id, node, output name) of every step run that output ``digest``, oldest first."""
        return [tuple(r) for r in self.conn.execute(  # type: ignore[misc]
            "SELECT e.run_id, e.node, e.name FROM edges e JOIN runs r ON r.run_id=e.run_id "
            "WHERE e.digest=? AND e.direction='out' ORDER BY r.started", (digest,))]

    def consumers(self, digest: str) -> list[tuple[str, str, str]]:
        """(run_id, node, input name) of every step run that read ``digest``, oldest first."""
        return [tuple(r) for r in self.conn.execute(  # type: ignore[misc]
            "SELECT e.run_id, e.node, e.name FROM edges e JOIN runs r ON r.run_id=e.run_id "
            "WHERE e.digest=? AND e.direction='in' ORDER BY r.started", (digest,))]

    def step_edges(self, run_id: str, node: str) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {"in": [], "out": []}
        for direction, name, digest in self.conn.execute(
            "SELECT direction, name, digest FROM edges WHERE run_id=? AND node=? ORDER BY rowid", (run_id, node)
        ):
            out[direction].append((name, digest))
        return out

    def step_row(self, run_id: str, node: str) -> dict[str, Any]:
        row = self._dict_row("SELECT * FROM steps WHERE run_id=? AND node=?", (run_id, node))
        if row is None:
            raise NotFoundError(
                f"run {run_id[:12]} has no step '{node}'. See its steps with `orch show {run_id[:12]}`."
            )
        row["key_parts"] = json.loads(row["key_parts"]) if row["key_parts"] else None
        return row

    def referenced_digests(self, run_ids: Iterable[str]) -> set[str]:
        ids = list(run_ids)
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" for _ in chunk)
            out.update(r[0] for r in self.conn.execute(
                f"SELECT DISTINCT digest FROM edges WHERE run_id IN ({marks})", chunk))
        return out

    def delete_artifacts(self, digests: Iterable[str]) -> None:
        with self.transaction() as c:
            for d in digests:
                c.execute("DELETE FROM artifacts WHERE digest=?", (d,))
                c.execute("DELETE FROM cache WHERE outputs LIKE ?", (f'%"{d}"%',))

    # -- file memo ----------------------------------------------------------

    def load_file_memo(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT memo_key, digest FROM file_memo").fetchall())

    def save_file_memo(self, entries: dict[str, str]) -> None:
        if entries:
            with self.transaction() as c:
                c.executemany("INSERT OR REPLACE INTO file_memo VALUES (?, ?)", list(entries.items()))

    # -- helpers ------------------------------------------------------------

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def _dict_rows(self, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, tuple(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def _dict_row(self, sql: str, args: Iterable[Any]) -> dict[str, Any] | None:
        rows = self._dict_rows(sql, args)
        return rows[0] if rows else None


def _sql(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    return json.dumps(value, default=str)
