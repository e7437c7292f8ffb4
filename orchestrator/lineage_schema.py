"""The metadata database's schema, its migrations, and opening a connection to it.

SQLite in WAL mode with a busy timeout (so concurrent runs wait rather than
fail with "database is locked"). A store made by an older version gets the
tables it lacks and its migrations on open, inside one ``BEGIN IMMEDIATE``
transaction; a store made by a newer version is refused. ``decode_column``
reads back a JSON column, checking what it holds. This module must not read
or write records (``lineage`` does).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import (
    DamagedDatabaseError,
    DamagedRecordError,
    DatabaseAccessError,
    DatabaseLockedError,
    DatabaseWriteError,
    NewerStoreError,
    OrchestratorError,
    StoreError,
    UserError,
)
from orchestrator.spelling import CLI, Spelling

SCHEMA_VERSION = 5
BUSY_TIMEOUT_MS = 60_000
#: How long taking the write lock waits quietly; past it, the wait is said on stderr (``begin_immediate``).
LOCK_NOTICE_MS = 1_500

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, file TEXT, params TEXT,
    status TEXT NOT NULL, started REAL NOT NULL, ended REAL,
    user TEXT, host TEXT, pid INTEGER, pid_start TEXT, git_commit TEXT,
    python TEXT, packages TEXT, executor TEXT, outputs TEXT, error TEXT, metrics TEXT, result TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
CREATE INDEX IF NOT EXISTS runs_pipeline ON runs(pipeline, started);
CREATE INDEX IF NOT EXISTS runs_running ON runs(host) WHERE status = 'running';
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, node TEXT NOT NULL, position INTEGER, step TEXT NOT NULL, site TEXT,
    key TEXT, key_parts TEXT, status TEXT NOT NULL, reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, started REAL, ended REAL, duration REAL, error TEXT,
    origin TEXT,
    PRIMARY KEY (run_id, node)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS steps_key ON steps(key);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, node TEXT NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL, started REAL, ended REAL, error TEXT, traceback TEXT,
    stdout TEXT, stderr TEXT, logs TEXT,
    PRIMARY KEY (run_id, node, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    digest TEXT PRIMARY KEY, type TEXT, materializer TEXT, size INTEGER,
    checksum TEXT, meta TEXT, inline BLOB, created REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edges (
    run_id TEXT NOT NULL, node TEXT NOT NULL, direction TEXT NOT NULL,
    name TEXT NOT NULL, digest TEXT NOT NULL, path TEXT, source TEXT,
    PRIMARY KEY (run_id, node, direction, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_digest ON edges(digest, direction);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, outputs TEXT NOT NULL, run_id TEXT, node TEXT, created REAL, parts TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_step ON cache(run_id, node);
CREATE TABLE IF NOT EXISTS file_memo (memo_key TEXT PRIMARY KEY, digest TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signatures (digest TEXT PRIMARY KEY, hmac TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, created REAL NOT NULL, production INTEGER);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL, model_digest TEXT NOT NULL,
    run_id TEXT, node TEXT, created REAL NOT NULL, task TEXT, metric TEXT, metrics TEXT, params TEXT,
    schema TEXT, gate TEXT,
    PRIMARY KEY (name, version), UNIQUE (name, model_digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS model_versions_digest ON model_versions(digest);
CREATE TABLE IF NOT EXISTS model_events (
    name TEXT NOT NULL, version INTEGER, previous INTEGER, action TEXT NOT NULL, at REAL NOT NULL,
    user TEXT, host TEXT, run_id TEXT, detail TEXT
);
CREATE INDEX IF NOT EXISTS model_events_name ON model_events(name, at);
CREATE TABLE IF NOT EXISTS drift_checks (
    name TEXT NOT NULL, version INTEGER, at REAL NOT NULL, source TEXT, status TEXT NOT NULL,
    alert INTEGER NOT NULL, summary TEXT, report_json TEXT, report_html TEXT, run_id TEXT
);
CREATE INDEX IF NOT EXISTS drift_checks_name ON drift_checks(name, at);
CREATE TABLE IF NOT EXISTS request_segments (
    path TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER, rows INTEGER NOT NULL, created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS request_segments_name ON request_segments(name, created);
"""

# Every table of the schema: a store missing one (made before it was added) gets it on open.
TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))


# Every JSON column: (table, column) -> (the kind of value it holds, the columns naming a row).
# ``object`` holds any JSON value. A column that may be NULL loses only that value when cleared.
JSON_COLUMNS: dict[tuple[str, str], tuple[type | tuple[type, ...], tuple[str, ...]]] = {
    ("runs", "params"): (dict, ("run_id",)),
    ("runs", "packages"): (dict, ("run_id",)),
    ("runs", "outputs"): (object, ("run_id",)),
    ("runs", "metrics"): (dict, ("run_id",)),
    ("runs", "result"): (dict, ("run_id",)),
    ("steps", "key_parts"): (dict, ("run_id", "node")),
    ("cache", "outputs"): (list, ("key",)),
    ("cache", "parts"): (dict, ("key",)),
    ("artifacts", "meta"): (dict, ("digest",)),
    ("model_versions", "metrics"): (dict, ("name", "version")),
    ("model_versions", "params"): (dict, ("name", "version")),
    ("model_versions", "schema"): (list, ("name", "version")),
    ("model_versions", "gate"): (dict, ("name", "version")),
    ("model_events", "detail"): (dict, ("rowid",)),
    ("drift_checks", "summary"): (dict, ("rowid",)),
}

_KINDS = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
          bool: "true or false", type(None): "null"}


def decode_column(text: str | bytes | None, what: str, expect: type | tuple[type, ...] = dict,
                  path: str | os.PathLike[str] | None = None) -> Any:
    """The JSON value of a database column, or None for NULL (or an empty value).

    A value written by hand, by a bad sector or on purpose must not become a
    traceback later: it is checked to decode and to be of the kind ``expect``
    (``object`` for any). Decoding costs what ``json.loads`` does, plus one
    type check.

    Args:
        what: the column and its row, for the message (``runs.metrics of run 1a2b3c``).
        path: the database file, for the message.

    Raises:
        DamagedRecordError: not JSON, nested too deeply, an integer too long to read,
            or a value of another kind.
    """
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedRecordError(path, what, f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise DamagedRecordError(path, what, "JSON nested too deeply to read") from None
    except (ValueError, TypeError) as exc:  # an int past Python's digit limit; bytes that are not text
        detail = "an integer too long to read" if "digits" in str(exc) else f"not valid JSON text ({exc})"
        raise DamagedRecordError(path, what, detail) from None
    if expect is not object and not isinstance(value, expect):
        wanted = _KINDS.get(expect, "JSON") if isinstance(expect, type) else "JSON"
        raise DamagedRecordError(path, what, f"{_KINDS.get(type(value), 'JSON')} where {wanted} belongs")
    return value


# Migrations from version N to N+1, applied in order inside one transaction.
MIGRATIONS: dict[int, str] = {
    # 2: an input edge names the node of the same run whose output it read (NULL: a file, or
    # recorded before), so lineage follows the pipeline's data flow, not only equal contents.
    # Edges recorded before get, where their run shows it, the latest node before the reader that
    # output that digest.
    1: "ALTER TABLE edges ADD COLUMN source TEXT;"
       "UPDATE edges SET source = (SELECT o.node FROM edges o JOIN steps so ON so.run_id = o.run_id "
       "AND so.node = o.node WHERE o.digest = edges.digest AND o.direction = 'out' "
       "AND o.run_id = edges.run_id AND so.position < (SELECT si.position FROM steps si "
       "WHERE si.run_id = edges.run_id AND si.node = edges.node) ORDER BY so.position DESC LIMIT 1) "
       "WHERE direction = 'in' AND path IS NULL",
    # 3: a cached step run names the step run whose result it reused ("RUN:node"): the cache
    # index keeps only the latest one per key, and a later --rerun would move it.
    2: "ALTER TABLE steps ADD COLUMN origin TEXT",
    # 4: a succeeded run records the shape of its pipeline's return value (tuples, lists, dicts
    # and the output each leaf is), so ``orchestrator.get_run(...).output()`` rebuilds it as it was.
    3: "ALTER TABLE runs ADD COLUMN result TEXT",
    # 5: indexes for lineage in a store with months of history: the step runs of one key (which
    # runs reused a computation), the cache entry a step run made and the model versions of an
    # artifact. Without them `orch lineage` scanned those tables once per vertex it showed
    # (26 s for the downstream lineage of a 5,000-item map's run in a store of 3,000 runs).
    # And the runs of one pipeline, newest first (`orch runs --pipeline`, plans, reruns), and the
    # running ones, which every run and command checks for a dead process (8 ms at 8,000 runs).
    4: "CREATE INDEX IF NOT EXISTS runs_pipeline ON runs(pipeline, started);"
       "CREATE INDEX IF NOT EXISTS runs_running ON runs(host) WHERE status = 'running';"
       "CREATE INDEX IF NOT EXISTS steps_key ON steps(key);"
       "CREATE INDEX IF NOT EXISTS cache_step ON cache(run_id, node);"
       "CREATE INDEX IF NOT EXISTS model_versions_digest ON model_versions(digest)",
}


def open_database(path: Path, synchronous: str, spelling: Spelling = CLI, *,
                  exclusive_if_full: bool = False) -> sqlite3.Connection:
    """Open (creating, migrating) the metadata database at ``path``, in WAL mode with a busy timeout.

    ``spelling``: how the user gave the store (``--store``, or ``store=`` from Python), for the
    messages that name the option to change. ``exclusive_if_full``: when the disk is too full for
    SQLite's shared-memory file (``-shm``, which every reader of a WAL database needs), open the
    database in exclusive locking mode instead, which needs none (see ``_open_exclusive``). Only
    for short commands: the lock keeps every other process out of the database while it is open.

    Raises:
        UserError: the folder of ``path`` cannot be created (a path the file system cannot take).
        DamagedDatabaseError: the file is damaged, or not a SQLite database.
        DatabaseAccessError: SQLite cannot open or write it (a read-only store).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the store folder {path.parent} for the metadata database: "
                        f"{exc.strerror or exc}. Pass {spelling.option('store', 'DIR')} (or "
                        f"{spelling.option('metadata', 'PATH')}) with a folder you can create.") from exc
    conn: sqlite3.Connection | None = None
    try:
        if path.is_file() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            conn = _open_read_only(path)
        else:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _enable_wal(conn, path)
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint={os.environ.get('ORCH_WAL_CKPT', '1000')}")
        conn.execute("PRAGMA foreign_keys=OFF")
        _migrate(conn, path, spelling)
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        error = database_error(path, exc, spelling)
        if exclusive_if_full and isinstance(error, DatabaseWriteError) and path.is_file():
            with contextlib.suppress(sqlite3.Error):
                return _open_exclusive(path, synchronous, spelling)
        raise error or StoreError(f"cannot open the metadata database {path}: {exc}") from exc
    except OrchestratorError:  # a newer store, a damaged schema version
        if conn is not None:
            conn.close()
        raise
    return conn


def _open_exclusive(path: Path, synchronous: str, spelling: Spelling) -> sqlite3.Connection:
    """Open the database on a disk too full for its ``-shm`` file, in exclusive locking mode.

    A WAL database is read through a shared-memory index in ``-shm``; on a full disk
    SQLite cannot size that file, and every statement, a read included, fails as a
    "disk I/O error". So every command failed, ``orch cache gc`` (the command that
    frees space) and ``orch doctor`` among them. Set before the first read, exclusive
    locking mode keeps that index in this process's memory: the database is read
    whole (its WAL included) and consistent, and written once there is room again
    (``gc`` deletes objects first). Other processes wait for the lock meanwhile.

    The lock is taken at the first read, and held from then on, so only that wait
    counts: while another process has the database open (``orch serve``, a notebook)
    it is not had, and the command soon says the disk is full, as it did before.
    """
    conn = sqlite3.connect(path, timeout=LOCK_NOTICE_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={LOCK_NOTICE_MS}")
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=OFF")
        _migrate(conn, path, spelling)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Open a database this user cannot write (a teammate's store, a read-only mount) for reading.

    Opened as usual, SQLite would create ``-wal`` and ``-shm`` beside it as this
    user (when the folder lets it), and, unable to write the database, leave them
    behind: the owner's SQLite then cannot write the ``-shm`` of another user, and
    every later run of the owner fails as "readonly". So when no ``-shm`` exists
    (no one has the database open, so it is whole in its file) it is opened
    ``immutable``, which creates no file; otherwise the existing ``-shm`` is
    read, as the open writer keeps it. Either way every write fails as readonly.
    """
    shared = os.path.exists(f"{path}-shm")
    uri = f"{path.absolute().as_uri()}?mode=ro{'' if shared else '&immutable=1'}"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def database_error(path: Path | None, exc: sqlite3.Error, spelling: Spelling = CLI) -> OrchestratorError | None:
    """The one-line error for a SQLite failure caused by the database file itself, or None (a bug).

    A damaged file and one that is not a database at all say how to start over
    without losing the objects; a file or folder SQLite cannot open or write
    (a read-only store) says that SQLite needs write access beside the file (naming the
    option to pass as ``spelling`` writes it);
    a full or failing disk says so, and that running again resumes.
    """
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    shown = path if path is not None else Path("metadata.db")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return DamagedDatabaseError(shown, text)
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")) \
            or "unable to open database file" in text or "readonly database" in text:
        if path is not None and path.is_dir():
            return UserError(f"the metadata database {path} is a folder, not a file. Move it aside, or pass "
                             f"{spelling.option('metadata', 'PATH')} naming a database file.")
        return DatabaseAccessError(shown, text, spelling.option("store", "COPY"))
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or "disk is full" in text or "disk I/O error" in text:
        return DatabaseWriteError(shown, text, _free_bytes(shown))
    return None


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path.parent if str(path.parent) else ".").free
    except OSError:
        return None


def _migrate(conn: sqlite3.Connection, path: Path, spelling: Spelling = CLI) -> None:
    """Create missing tables and apply migrations, unless the schema is current (no write lock then)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if row and _schema_version(row[0], path) == SCHEMA_VERSION and present >= TABLES:
            return  # the common case: no write lock needed
        if row and _schema_version(row[0], path) > SCHEMA_VERSION:
            raise _newer(path, _schema_version(row[0], path), spelling)  # said before a write lock a reader cannot take
    except sqlite3.OperationalError:
        pass  # no meta table yet: a new store
    begin_immediate(conn, path)
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = _schema_version(row[0], path) if row else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise _newer(path, version, spelling)
        while version < SCHEMA_VERSION:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            version += 1
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


_announced: set[str] = set()  # databases whose lock wait this process has said on stderr
_LOCK_SLICE_MS = 200  # SQLite waits this long at a time for the write lock; Python gets control between


def begin_immediate(conn: sqlite3.Connection, path: Path, timeout_ms: int | None = None) -> None:
    """``BEGIN IMMEDIATE``: take the write lock, waiting for another process that holds it.

    Every command that writes the metadata database starts its transactions
    here. Another ``orch`` holds the lock for milliseconds; a ``sqlite3``
    shell or another tool with a transaction open may hold it for as long as
    it likes, and the command would sit silent for the whole busy timeout and
    then fail with SQLite's bare ``database is locked``. So the first
    ``LOCK_NOTICE_MS`` are waited quietly; then stderr says once what the
    command waits for, and after ``BUSY_TIMEOUT_MS`` in all it gives up. The
    wait goes in short slices, so that Ctrl-C stops it at once (SQLite's own
    wait does not return to Python until it ends).

    ``timeout_ms`` shortens the wait for a caller that must not stall (the model server indexes a
    logged request in passing, and leaves it to a background retry when the lock is taken).

    Raises:
        DatabaseLockedError: the lock was not free within ``timeout_ms`` (default ``BUSY_TIMEOUT_MS``).
    """
    if timeout_ms is None:
        timeout_ms = BUSY_TIMEOUT_MS  # read when called: a test shortens it
    started = time.monotonic()
    conn.execute(f"PRAGMA busy_timeout={min(LOCK_NOTICE_MS, _LOCK_SLICE_MS, timeout_ms)}")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
                waited = time.monotonic() - started
                if waited * 1000 >= timeout_ms:
                    raise DatabaseLockedError(path, timeout_ms / 1000) from exc
                if waited * 1000 >= LOCK_NOTICE_MS and str(path) not in _announced:
                    _announced.add(str(path))
                    _say(f"… waiting for the metadata database {path}: another process holds its write lock "
                         "(a sqlite3 shell or another tool with a transaction open?); "
                         f"giving up after {timeout_ms / 1000:g} s")
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _say(line: str) -> None:
    """One line on the process's stderr, not in the captured output of a step running meanwhile."""
    from orchestrator.capture import driver_stderr

    stream = driver_stderr()
    stream.write(line + "\n")
    stream.flush()


def _locked(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up waiting for another connection's lock (SQLITE_BUSY)."""
    return (getattr(exc, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY") or "locked" in str(exc) \
        or "busy" in str(exc)


def _newer(path: Path, version: int, spelling: Spelling = CLI) -> NewerStoreError:
    return NewerStoreError(
        f"the store at {path.parent} was written by a newer orchestrator (schema {version} > {SCHEMA_VERSION}). "
        f"Upgrade orchestrator (pip install -U), or use another {spelling.option('store', 'DIR')} with this version.")


def _schema_version(value: Any, path: Path) -> int:
    """The recorded schema version; a hand-edited one makes the database damaged, not a traceback.

    Without it nothing says how to read the rest, so the whole file is reported (``orch doctor`` too).
    """
    if type(value) is int or (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10):
        return int(value)
    raise DamagedDatabaseError(path, f"its schema version {str(value)[:20]!r} is not a number")


def _enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch to WAL, waiting out other first openers.

    Creating a new database's WAL takes an exclusive lock, and SQLite answers a
    concurrent ``journal_mode`` change with "database is locked" at once rather
    than through the busy handler, so this waits like the busy timeout would.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise StoreError(f"cannot open the metadata database {path}: {exc} (another process has "
                                 f"held it for {BUSY_TIMEOUT_MS // 1000} s)") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
