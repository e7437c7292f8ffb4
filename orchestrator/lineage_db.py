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

import contextlib
import json
import os
import re
import shlex
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator import result_record, run_liveness
from orchestrator.errors import (
    DamagedRecordError,
    DatabaseAccessError,
    DatabaseLockedError,
    DatabaseWriteError,
    NotFoundError,
    did_you_mean,
)
from orchestrator.lineage_records import (
    AttemptRecord,
    CachedOutput,
    DamagedValue,
    StepRecord,
    process_alive,
    process_start_token,
)
from orchestrator.lineage_schema import (
    BUSY_TIMEOUT_MS,
    JSON_COLUMNS,
    SCHEMA_VERSION,
    begin_immediate,
    database_error,
    decode_column,
    open_database,
)
from orchestrator.spelling import CLI, Spelling

_JSON_COLUMNS = frozenset({"params", "packages", "outputs", "metrics"})
# The kind of value each JSON column of ``runs`` holds.
_RUN_KINDS = {column: JSON_COLUMNS[("runs", column)][0] for column in ("params", "packages", "outputs", "metrics")}
# What a run (and its running step) found with no process left says stopped it: a SIGKILL, the
# kernel's out-of-memory killer, a machine that stopped.
_DIED = "the run's process died"

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "AttemptRecord", "CachedOutput", "Lineage", "StepRecord",
           "process_alive", "process_start_token"]

class Lineage:
    """The metadata database of one store."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL",
                 spelling: Spelling = CLI, exclusive_if_full: bool = False) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.exclusive_if_full = exclusive_if_full  # a short command: a full disk opens it exclusively
        self.spelling = spelling  # how its messages name the options (`--store`, or `store=` from Python)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._lock = threading.RLock()
        self._reading = False
        self._locked_out: DatabaseLockedError | None = None  # the write lock was not had in the busy timeout
        # cache key -> (its outputs' JSON, run_id, node), read ahead (see preload_cache)
        self._preloaded: dict[str, tuple[str, str, str]] = {}
        self.found_in: dict[str, str] = {}  # cache key -> "RUN:node" that stored it, as lookup found it
        # cache key -> (outputs, "RUN:node") of entries queued and not yet committed: a map item whose
        # twin (an equal item) just ran finds its result here instead of computing it again
        self._queued: dict[str, tuple[list[CachedOutput], str]] = {}
        # run id -> (metrics to set, names to remove) for the next flush (see queue_run_metrics)
        self._metrics_queued: dict[str, tuple[dict[str, Any], set[str]]] = {}
        self.last_flush = time.monotonic()
        self._pending: list[tuple[StepRecord, tuple[AttemptRecord, ...], tuple[Any, ...],
                                  list[CachedOutput] | None]] = []

    # -- connection ---------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            # A connection inherited through fork is abandoned, never used.
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        return open_database(self.path, self.synchronous, self.spelling, exclusive_if_full=self.exclusive_if_full)

    @contextmanager
    def transaction(self, wait_ms: int | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (``BEGIN IMMEDIATE``), so it never deadlocks.

        Held under a lock: the runner's commit thread may flush while the main
        thread is inside a long step. ``wait_ms`` waits that long for another
        process's write lock instead of the whole busy timeout; a caller that
        passes it retries by itself, so a lock it did not get does not refuse
        this object's later writes (as one that outlasted the busy timeout does).
        """
        with self._lock:
            conn = self.conn
            self._end_read()
            if self._locked_out is not None:
                # This command already waited the whole busy timeout once: it does not wait again for
                # each record it still tries to write while it stops (a run's last records, its end).
                raise DatabaseLockedError(self.path, self._locked_out.seconds)
            try:
                begin_immediate(conn, self.path, wait_ms)  # says so on stderr if another process holds the lock long
            except DatabaseLockedError as exc:
                if wait_ms is None:
                    self._locked_out = exc
                raise
            except BaseException:
                # Ctrl-C just after BEGIN took the lock: left open, every later commit of the run failed
                # ("cannot start a transaction within a transaction"), its records with it.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            try:
                yield conn
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK")
                if getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY":
                    # A store opened read-only (not writable for this user): one line, from Python too.
                    raise DatabaseAccessError(self.path, str(exc)) from exc
                raise
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self.flush()
            self._end_read()
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

    def finish_run(self, run_id: str, status: str, *, outputs: Any = None, error: str | None = None,
                   result: Any = None) -> None:
        """Record how the run ended: ``outputs`` the digests it returned, ``result`` their shape (see results)."""
        self.flush()
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status=?, ended=?, outputs=?, error=?, result=? WHERE run_id=?",
                (status, time.time(), None if outputs is None else json.dumps(_text_keys(outputs)), _storable(error),
                 None if result is None else json.dumps(result), run_id),
            )

    def set_run_metrics(self, run_id: str, metrics: dict[str, Any], drop: Iterable[str] = ()) -> None:
        """Add ``metrics`` to the run's, replacing equal names; remove the names in ``drop``."""
        with self.transaction() as c:
            self._merge_run_metrics(c, run_id, metrics, set(drop))

    def queue_run_metrics(self, run_id: str, metrics: dict[str, Any], drop: Iterable[str] = ()) -> None:
        """``set_run_metrics``, written with the next ``flush`` (the step records' own transaction).

        Each write re-encodes all of the run's metrics: once per item of a
        map of 2,000 items that each report some, that was quadratic, and a
        transaction per item besides.
        """
        with self._lock:
            added, dropped = self._metrics_queued.setdefault(run_id, ({}, set()))
            for name in drop:
                added.pop(name, None)
                dropped.add(name)
            for name, value in metrics.items():
                added[name] = value
                dropped.discard(name)

    def _merge_run_metrics(self, c: sqlite3.Connection, run_id: str, metrics: dict[str, Any],
                           drop: set[str]) -> None:
        row = c.execute("SELECT metrics FROM runs WHERE run_id=?", (run_id,)).fetchone()
        earlier = self.decode(row[0], f"runs.metrics of run {run_id}") if row else None
        merged = {name: value for name, value in (earlier or {}).items() if name not in drop}
        merged.update(metrics)
        c.execute("UPDATE runs SET metrics=? WHERE run_id=?", (json.dumps(merged), run_id))

    def mark_dead_runs(self) -> list[str]:
        """Mark ``running`` runs whose process is gone as ``interrupted``; return their ids.

        A run of this host is checked by its process; one of another host (a container or a pod
        that was killed, a machine sharing the store) by the sign of life it leaves (run_liveness).
        """
        host = os.uname().nodename
        rows = self.conn.execute("SELECT run_id, pid, pid_start, host FROM runs WHERE status='running'").fetchall()
        dead = [r[0] for r in rows if (r[1] != os.getpid() and not process_alive(r[1], r[2] or "")
                                       if r[3] == host else run_liveness.is_stale(self.path, r[0]))]
        if dead:
            with contextlib.suppress(DatabaseAccessError, DatabaseWriteError), self._full_disk_as_error(), \
                    self.transaction() as c:
                # A store this user may only read (a teammate's) is left for its owner's next command to mark.
                for run_id in dead:
                    # It ended at its last sign of life, not when someone looked: an `orch runs` a
                    # day later must not say the run took a day. Its last record, or the last touch
                    # of its file (each minute while it lasts): killed 25 minutes into a step, it
                    # did not take the 2 s its records alone say.
                    # Its error says why, as a step's reason does: `orch runs --json` lists an
                    # interrupted run's error, and `orch show` its error line.
                    c.execute("UPDATE runs SET status='interrupted', error=COALESCE(error, :why), ended=COALESCE(ended, "
                              "(SELECT MAX(t) FROM (SELECT started AS t FROM runs WHERE run_id=:id "
                              "UNION ALL SELECT MAX(COALESCE(ended, 0), COALESCE(started, 0)) FROM steps "
                              "WHERE run_id=:id UNION ALL SELECT ended FROM attempts WHERE run_id=:id "
                              "UNION ALL SELECT :touched))) WHERE run_id=:id AND status='running'",
                              {"id": run_id, "why": _DIED, "touched": run_liveness.last_touched(self.path, run_id)})
                    # Killed in it, the step was in an attempt its row may not count: a running row says 0 in
                    # a first attempt (`orch show` said none where `orch logs` shows attempt 1); in a retry
                    # it counts the attempt running, whose earlier failed attempts are committed already.
                    # Its reason stays why it started (`no earlier result`); its error says what stopped it,
                    # as for a step stopped by Ctrl-C or SIGTERM.
                    c.execute("UPDATE steps SET status='interrupted', error=COALESCE(error, ?), attempts=MAX(attempts, 1) "
                              "WHERE run_id=? AND status='running'", (_DIED, run_id))
            for run_id in dead:
                run_liveness.forget(run_liveness.alive_file(self.path, run_id))
        return dead

    @contextmanager
    def _full_disk_as_error(self) -> Iterator[None]:
        """SQLite's "database or disk is full" from the block as ``DatabaseWriteError``, its transaction ended.

        For a write a reading command may skip: marking dead runs ``interrupted`` on a
        full disk is left for a later command, and ``orch runs`` still shows the runs.
        """
        try:
            yield
        except sqlite3.Error as exc:
            error = database_error(self.path, exc, self.spelling)
            if not isinstance(error, DatabaseWriteError):
                raise
            if self._conn is not None and self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise error from exc

    def resolve_run(self, ref: str) -> str:
        """The full run id for an id or unique prefix; ``latest`` is the newest run, ``latest~N`` N runs before it."""
        if not ref:
            raise NotFoundError("an empty run id is not valid. Pass a run id or a prefix of one (see `orch runs`), "
                                "or `latest`.")
        if ref in ("latest", "last", "-"):
            row = self.conn.execute("SELECT run_id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
            if not row:
                raise NotFoundError("there are no runs in this store yet. Start one with `orch run FILE`.")
            return str(row[0])
        base, tilde, back = ref.partition("~")
        if tilde and base in ("latest", "last"):
            return self._runs_back(ref, back)
        # Run ids are lowercase hex, as digests are: C01A022594A1 (copied from a spreadsheet or a
        # ticket) names the run c01a022594a1, as its digests' capitals already named them.
        prefix = ref.lower() if all(c in "0123456789abcdefABCDEF" for c in ref) else ref
        rows = self.conn.execute(
            "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? LIMIT 2", (prefix, prefix + "\uffff")
        ).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
        if len(rows) > 1:
            raise NotFoundError(f"run id '{ref}' is ambiguous. Give more characters (see `orch runs`).")
        raise NotFoundError(self._no_run(ref))

    def _no_run(self, ref: str) -> str:
        """Why ``ref`` names no run. A model's ``NAME`` or ``NAME@VERSION`` (which orch diff, serve and
        monitor take) was 'no run churn@2'; the line names the run that trained it and where to look."""
        from orchestrator.errors import UserError
        from orchestrator.registry import Registry

        try:
            row = Registry(self).resolve(ref)
        except (NotFoundError, UserError):
            return self._digest_not_run(ref) or f"no run '{ref}' in this store. List runs with `orch runs`."
        name, version, run_id = row["name"], row["version"], row.get("run_id")
        what = f"'{ref}' is a model version, not a run" if "@" in ref else \
            f"'{ref}' is a model, not a run; its production version is v{version}"
        trained = f"run {run_id} trained it (`orch show {run_id}`)" if run_id else "it was registered without a run"
        return f"{what}: {trained}, and `orch models show {name}@{version}` gives its audit trail."

    def _digest_not_run(self, ref: str) -> str | None:
        """Why a digest (as `orch show` lists outputs, `orch lineage` nodes) names no run: what it is and where.

        Only asked once no run matched: a run's own lookup stays one index search.
        """
        prefix = ref.lower()
        if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
            return None
        found = self.conn.execute(
            "SELECT e.digest, e.run_id, e.node, e.path FROM edges e JOIN runs r ON r.run_id=e.run_id "
            "WHERE e.digest >= ? AND e.digest < ? AND (e.direction='out' OR e.path IS NOT NULL) "
            "ORDER BY e.direction='out' DESC, r.started LIMIT 1", (prefix, prefix + "g")).fetchone()
        if found is None:
            return None
        digest, run_id, node, path = found
        what = f"the content of file {path} that step {node} of run {run_id} read" if path else \
            f"an output of step {node} of run {run_id}"
        return (f"'{ref}' is a digest, not a run: {what}. `orch show {run_id}` shows that run; "
                f"`orch lineage {digest[:12]}` traces it.")

    def _runs_back(self, ref: str, back: str) -> str:
        """``latest~N``: the run started N runs before the newest (``latest~0`` is ``latest``), as git's ``HEAD~N``."""
        if not (back.isascii() and back.isdigit()):
            raise NotFoundError(f"'{ref}' is not a run: write latest~N with N a count of runs back, such as "
                                "latest~1 (the run before the newest).")
        row = self.conn.execute("SELECT run_id FROM runs ORDER BY started DESC LIMIT 1 OFFSET ?",
                                (int(back),)).fetchone()
        if row is None:
            count = self.count_runs()
            if not count:
                raise NotFoundError("there are no runs in this store yet. Start one with `orch run FILE`.")
            oldest = "latest is the only one" if count == 1 else f"latest~{count - 1} is the oldest"
            raise NotFoundError(f"there {'is 1 run' if count == 1 else f'are {count} runs'} in this store, so no "
                                f"{ref}: {oldest}. See `orch runs`.")
        return str(row[0])

    def run(self, run_id: str) -> dict[str, Any]:
        row = self._dict_row("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if row is None:
            raise NotFoundError(f"no run '{run_id}' in this store. List runs with `orch runs`.")
        self._decode_run(row)
        return row

    def pipelines(self) -> list[str]:
        """The names of the pipelines that have runs, sorted."""
        return [str(name) for (name,) in self.conn.execute("SELECT DISTINCT pipeline FROM runs ORDER BY pipeline")]

    def count_runs(self, pipeline: str | None = None, statuses: Sequence[str] = (), since: float | None = None) -> int:
        """How many runs the store records (of ``pipeline``, with one of ``statuses``, started since ``since``)."""
        where, args = _runs_where(pipeline, statuses, since)
        return int(self.conn.execute(f"SELECT count(*) FROM runs{where}", args).fetchone()[0])

    def runs(self, limit: int | None = None, pipeline: str | None = None,
             statuses: Sequence[str] = (), since: float | None = None) -> list[dict[str, Any]]:
        """The runs, the last started first: of ``pipeline``, with one of ``statuses``, started since ``since``
        (a Unix time), for each one given."""
        where, args = _runs_where(pipeline, statuses, since)
        sql = f"SELECT * FROM runs{where} ORDER BY started DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self._dict_rows(sql, args):
            out.append(self._decode_run(row))
        return out

    def _decode_run(self, row: dict[str, Any]) -> dict[str, Any]:
        for key, kind in _RUN_KINDS.items():
            if row[key]:
                row[key] = self.decode(row[key], f"runs.{key} of run {row['run_id']}", kind)
        return row

    # -- steps --------------------------------------------------------------

    def record_step(self, record: StepRecord, attempts: Iterable[AttemptRecord] = (),
                    artifacts: Iterable[Any] = (), cache_entry: list[CachedOutput] | None = None) -> None:
        """Commit a finished node (and everything queued before it) now."""
        self.queue_step(record, attempts, artifacts, cache_entry)
        self.flush()

    def queue_step(self, record: StepRecord, attempts: Iterable[AttemptRecord] = (),
                   artifacts: Iterable[Any] = (), cache_entry: list[CachedOutput] | None = None) -> None:
        """Queue a node's row, attempts, new artifacts, edges and cache entry for the next ``flush``.

        The runner flushes before it starts any work and before it waits, so a
        finished step is durable before its dependents start, while nodes that
        needed no work (cached, skipped) share one transaction.
        """
        with self._lock:
            self._pending.append((record, tuple(attempts), tuple(artifacts), cache_entry))
            if cache_entry is not None and record.key:
                self._queued[record.key] = (cache_entry, f"{record.run_id}:{record.node}")
        if len(self._pending) >= 512:
            self.flush()

    @property
    def pending(self) -> int:
        """How many node records are queued and not yet committed."""
        return len(self._pending)

    def flush(self) -> None:
        """Write everything queued in one transaction."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if not self._pending and not self._metrics_queued:
            return
        # Signed before the queue is taken, so a missing key loses no records.
        signatures = _signatures(info for _, _, infos, _ in self._pending for info in infos)
        self.last_flush = time.monotonic()
        pending, self._pending = self._pending, []
        # Committed below, and the write ends the read: lookups find them in the database.
        queued, self._queued = self._queued, {}
        metrics, self._metrics_queued = self._metrics_queued, {}
        steps: list[tuple[Any, ...]] = []
        edges: list[tuple[Any, ...]] = []
        attempts: list[tuple[Any, ...]] = []
        artifacts: list[tuple[Any, ...]] = []
        cache: list[tuple[Any, ...]] = []
        now = time.time()
        for r, tries, infos, entry in pending:
            steps.append((r.run_id, r.node, r.position, r.step, r.site, r.key, r.parts_json(), r.status, r.reason,
                          r.attempts, r.started, r.ended, r.duration, r.error, r.origin))
            if r.status == "cached" and not tries and not infos:
                if r.inputs:  # a map item: the list it came from (see RunLoop._cached)
                    edges.extend((r.run_id, r.node, "in", n, d, None, source) for n, d, source in r.inputs)
                if r.files:  # the paths this run gave it, where the reused run may have read a copy
                    edges.extend((r.run_id, r.node, "in", n, d, p, None) for n, (p, d) in r.files)
                continue  # a cached node is its row alone (most nodes of a re-run)
            # A running step's inputs too: killed in it (SIGKILL, the OOM killer), the run keeps what that
            # step was reading, as an interrupted one does (`orch lineage RUN:fit`, `orch show --json`).
            edges.extend((r.run_id, r.node, "in", n, d, None, source) for n, d, source in r.inputs)
            if r.files:  # path parameters: most nodes have none
                edges.extend((r.run_id, r.node, "in", n, d, p, None) for n, (p, d) in r.files)
            edges.extend((r.run_id, r.node, "out", n, d, None, None) for n, d in r.outputs)
            if not _implied_attempt(r, tries):
                attempts.extend((r.run_id, r.node, a.attempt, a.status, a.started, a.ended, a.error,
                                 a.traceback, a.stdout or None, a.stderr or None, a.logs or None) for a in tries)
            artifacts.extend((i.digest, i.type_name, i.materializer, i.size, i.checksum,
                              json.dumps(i.meta) if i.meta else None, i.inline, now) for i in infos)
            if entry is not None and r.key:
                outputs = json.dumps([[o.name, o.digest, o.inline, o.type_name] for o in entry])
                cache.append((r.key, outputs, r.run_id, r.node, now, r.parts_json()))
                cache.extend((key, outputs, r.run_id, r.node, now, parts) for key, parts in r.also_keys)
        rows = (steps, edges, attempts, artifacts, signatures, cache)
        try:
            try:
                self._insert(*rows, metrics)
            except UnicodeEncodeError:
                # Text SQLite cannot take (a lone surrogate: a non-UTF-8 file name a step printed or put in
                # its error, as os.listdir decodes it): written with those characters replaced, not lost.
                steps, edges, attempts, artifacts, signatures, cache = (
                    [tuple(_storable(v) for v in row) for row in table] for table in rows)
                self._insert(steps, edges, attempts, artifacts, signatures, cache, metrics)
        except BaseException:
            # Not written: the transaction rolled back (Ctrl-C arrived in the middle of it, the database
            # was locked). Queued again, ahead of what came since, for the next flush (the run's end):
            # else a step the run reported as ran was missing from its record, or left `running`.
            self._pending[:0] = pending
            self._queued = {**queued, **self._queued}
            newer, self._metrics_queued = self._metrics_queued, metrics
            for run_id, (added, dropped) in newer.items():
                self.queue_run_metrics(run_id, added, dropped)
            raise

    def _insert(self, steps: list[tuple[Any, ...]], edges: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]],
                artifacts: list[tuple[Any, ...]], signatures: list[tuple[Any, ...]],
                cache: list[tuple[Any, ...]], metrics: dict[str, tuple[dict[str, Any], set[str]]]) -> None:
        """Write one flush's rows and the run metrics queued with them, in one transaction."""
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", steps)
            if edges:
                c.executemany("INSERT OR REPLACE INTO edges VALUES (?,?,?,?,?,?,?)", edges)
            if attempts:
                c.executemany("INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?)", attempts)
            if artifacts:
                # REPLACE: a re-recorded digest means its object was rewritten (it was damaged).
                c.executemany("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?,?,?,?)", artifacts)
            if signatures:
                c.executemany("INSERT OR REPLACE INTO signatures VALUES (?,?)", signatures)
            if cache:
                c.executemany("INSERT OR REPLACE INTO cache VALUES (?,?,?,?,?,?)", cache)
            for run_id, (added, dropped) in metrics.items():
                try:
                    self._merge_run_metrics(c, run_id, added, dropped)
                except DamagedRecordError:  # the run's own row, hand-edited meanwhile: its metrics start anew
                    c.execute("UPDATE runs SET metrics=? WHERE run_id=?", (json.dumps(added), run_id))

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """Every node record of a run, in DAG order, with its input and output edges."""
        self._end_read()
        rows = self._dict_rows("SELECT * FROM steps WHERE run_id=? ORDER BY position", (run_id,))
        for row in rows:
            row["key_parts"] = self.decode(row["key_parts"], f"steps.key_parts of {run_id}:{row['node']}")
            edges = self.step_edges(run_id, row["node"], row)
            if row["status"] == "cached":  # a map item says which list it read its item from (own_inputs)
                own = {e[1]: e[:4] for e in self.own_inputs(run_id, row["node"])}
                if own:
                    edges = [own.pop(e[1], e) if e[0] == "in" else e for e in edges] + list(own.values())
            row["inputs"] = [_edge(e) for e in edges if e[0] == "in"]
            row["outputs"] = [_edge(e) for e in edges if e[0] == "out"]
        return rows

    def origin(self, run_id: str, node: str, row: dict[str, Any] | None = None) -> tuple[str, str]:
        """The step run whose edges describe this one.

        A cached step run records no edges of its own: equal keys mean equal
        inputs and outputs, so they are those of the step run whose result it
        reused (recorded with it; for older records, the cache index's). A map
        item records its inputs besides, for the list it came from (``own_inputs``).
        """
        row = row if row is not None else self.step_row(run_id, node)
        if row.get("origin"):
            origin_run, _, origin_node = str(row["origin"]).partition(":")
            return origin_run, origin_node
        if row["status"] == "cached" and row["key"]:  # recorded before origins were
            found = self.conn.execute("SELECT run_id, node FROM cache WHERE key=?", (row["key"],)).fetchone()
            if found:
                return str(found[0]), str(found[1])
        return run_id, node

    def step_edges(self, run_id: str, node: str,
                   row: dict[str, Any] | None = None) -> list[tuple[str, str, str, str | None]]:
        """(direction, name, digest, path) of a step run's inputs and outputs."""
        return [e[:4] for e in self.flow_edges(run_id, node, row)[1]]

    def flow_edges(self, run_id: str, node: str, row: dict[str, Any] | None = None
                   ) -> tuple[tuple[str, str], list[tuple[str, str, str, str | None, str | None]]]:
        """The step run whose edges describe this one, and (direction, name, digest, path, source) of each.

        ``source`` is the node of that step run's run whose output an input was
        (None for a file, and for edges recorded before sources were).
        """
        origin_run, origin_node = self.origin(run_id, node, row)
        edges = [tuple(e) for e in self.conn.execute(
            "SELECT direction, name, digest, path, source FROM edges WHERE run_id=? AND node=?",
            (origin_run, origin_node))]
        edges.sort(key=lambda e: (e[0] != "out", _natural(e[1])))  # outputs first; xs[2] before xs[10]
        return (origin_run, origin_node), edges  # type: ignore[return-value]

    def own_inputs(self, run_id: str, node: str) -> list[tuple[str, str, str, str | None, str | None]]:
        """The input edges a cached step run recorded itself, as ``flow_edges`` gives them (none: it has only
        those of the step run it reused).

        A map item records where it read its item from: its key holds the item,
        not the list, and the step run it reused may have taken an equal item
        from another list (the map before it in the same run, or yesterday's).
        """
        edges = [tuple(e) for e in self.conn.execute(
            "SELECT direction, name, digest, path, source FROM edges WHERE run_id=? AND node=? AND direction='in'",
            (run_id, node))]
        edges.sort(key=lambda e: _natural(e[1]))
        return edges  # type: ignore[return-value]

    def attempts(self, run_id: str, node: str) -> list[dict[str, Any]]:
        """Every attempt of a step run, in order, with its error, traceback and captured text."""
        rows = self._dict_rows(
            "SELECT * FROM attempts WHERE run_id=? AND node=? ORDER BY attempt", (run_id, node)
        )
        if rows:
            return rows
        step = self._dict_row("SELECT status, attempts, started, ended FROM steps WHERE run_id=? AND node=?",
                              (run_id, node))
        if step is None or step["status"] != "ran" or step["attempts"] != 1:
            return []
        # One clean attempt is not stored on its own (see ``_implied_attempt``): it is the step's run.
        return [{"run_id": run_id, "node": node, "attempt": 1, "status": "succeeded", "started": step["started"],
                 "ended": step["ended"], "error": None, "traceback": None, "stdout": None, "stderr": None,
                 "logs": None}]

    def recent_keys(self, pipeline: str, runs: int = 10) -> dict[str, list[tuple[str, str | None]]]:
        """For each node of ``pipeline``: its distinct keys in the last runs, newest first, with parts.

        Reads the pipeline's last few runs by primary key, newest first, so that
        explaining every miss of a large pipeline costs a handful of queries.
        The parts of a cached record are fetched by ``key_parts_of`` when needed:
        those the key was computed with. A cached step given files records its
        own (the paths of an equal copy, which no key holds): those are one more
        entry for that key, so that a miss can be explained against the paths
        the last run read as well as those the key was computed from.
        """
        out: dict[str, list[tuple[str, str | None]]] = {}
        run_ids = [r[0] for r in self.conn.execute(
            "SELECT run_id FROM runs WHERE pipeline=? ORDER BY started DESC LIMIT ?", (pipeline, runs))]
        for run_id in run_ids:
            for node, key, parts, status in self.conn.execute(
                "SELECT node, key, key_parts, status FROM steps WHERE run_id=? AND key IS NOT NULL "
                "AND status IN ('ran', 'cached')", (run_id,)):
                seen = out.setdefault(node, [])
                known = any(k == key for k, _ in seen)
                if status == "cached" and parts is not None:
                    if (key, parts) not in seen:
                        seen.append((key, parts))  # the paths this run gave it
                    if not known:
                        seen.append((key, None))  # and what the key was computed with
                elif not known:
                    seen.append((key, parts))
        return out

    def ordered_outputs(self, key: str | None, outputs: dict[str, str]) -> dict[str, str]:
        """A step run's outputs (name -> digest) in the order its step declares them.

        Edges carry names, not order; the cache entry under the step's key
        lists them as the step returned them (``outputs=("train", "test")``).
        Without one, names sort naturally (``out2`` before ``out10``), the
        declared order of a ``tuple[...]`` annotation. With no edges (their
        records cleared), the cache entry's digests are the outputs.
        """
        row = self.conn.execute("SELECT outputs FROM cache WHERE key=?", (key,)).fetchone() if key else None
        cached = (_cached_outputs(row[0]) or []) if row else []
        if cached and outputs and {o.name for o in cached} == set(outputs):
            return {o.name: outputs[o.name] for o in cached}
        if cached and not outputs:
            return {o.name: o.digest for o in cached}
        return dict(sorted(outputs.items(), key=lambda item: _natural(item[0])))

    def key_parts_of(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT parts FROM cache WHERE key=?", (key,)).fetchone()
        return self.decode(row[0], f"cache.parts of key {key}") if row else None  # type: ignore[no-any-return]

    # -- cache index and artifacts -----------------------------------------

    def lookup(self, key: str) -> list[CachedOutput] | None:
        """The outputs stored under ``key``, or None.

        Lookups share one read transaction until the next write, which saves
        SQLite's per-statement locking on the hot path of a cached run; the
        snapshot is at most one commit interval old, so at worst a result
        another run just stored is computed again.
        """
        queued = self._queued.get(key)
        if queued is not None:
            self.found_in[key] = queued[1]
            return queued[0]
        row = self._preloaded.pop(key, None)
        if row is None:
            with self._lock:
                conn = self.conn
                if not self._reading:
                    self._reading = True  # before: a Ctrl-C right after BEGIN must not leave it open, unknown
                    conn.execute("BEGIN")
                row = conn.execute("SELECT outputs, run_id, node FROM cache WHERE key=?", (key,)).fetchone()
            if row is None:
                return None
        outputs = _cached_outputs(row[0])
        if outputs is None:
            return None  # a damaged entry is a miss: the step runs again and its result replaces it
        self.found_in[key] = f"{row[1]}:{row[2]}"
        return outputs

    def preload_cache(self, pipeline: str) -> None:
        """Read ahead, in one query, the cache entries of the keys the pipeline's last run had.

        A re-run mostly looks up those keys again, one node at a time; taking
        them from memory instead of one SQLite query each is a fifth of a
        fully cached run's time. An entry is used once (a repeated lookup goes
        to the database), and entries dropped meanwhile by this process are
        dropped here too; one another process removes is found missing later
        (its object is checked, or its load fails), as with any snapshot.
        """
        self.found_in.clear()
        row = self.conn.execute("SELECT run_id FROM runs WHERE pipeline=? ORDER BY started DESC LIMIT 1",
                                (pipeline,)).fetchone()
        if row is None:
            return
        self._preloaded = {key: (outputs, run_id, node) for key, outputs, run_id, node in self.conn.execute(
            "SELECT key, outputs, run_id, node FROM cache WHERE key IN "
            "(SELECT key FROM steps WHERE run_id=? AND key IS NOT NULL)", (row[0],))}

    def _drop_preloaded(self, digests: list[str]) -> None:
        """Forget read-ahead cache entries with any of these outputs, as the database does."""
        quoted = [f'"{d}"' for d in digests]
        self._preloaded = {k: v for k, v in self._preloaded.items() if not any(q in v[0] for q in quoted)}
        self._queued = {k: v for k, v in self._queued.items() if not any(o.digest in digests for o in v[0])}

    def refresh(self) -> None:
        """See what other processes committed since this connection's last read."""
        with self._lock:
            self._end_read()

    def _end_read(self) -> None:
        if self._reading:
            self._reading = False
            if self.conn.in_transaction:  # not when BEGIN itself failed or never ran
                self.conn.execute("COMMIT")

    def forget_steps(self, run_id: str, nodes: Iterable[str]) -> None:
        """Remove the rows of nodes that ``run_id`` submitted but that never started.

        A step queued on a Dask worker when the run was interrupted got a
        "running" row when it was submitted; having never run, it is no step
        of the run, as a step the other executors never submitted is not.
        """
        self.flush()  # a queued "running" row must not land after the delete
        with self.transaction() as c:
            c.executemany("DELETE FROM steps WHERE run_id=? AND node=?", [(run_id, n) for n in nodes])
            c.executemany("DELETE FROM edges WHERE run_id=? AND node=?", [(run_id, n) for n in nodes])

    def forget(self, key: str) -> None:
        """Drop a cache entry whose artifacts turned out missing or damaged."""
        self._preloaded.pop(key, None)
        self._queued.pop(key, None)
        with self.transaction() as c:
            c.execute("DELETE FROM cache WHERE key=?", (key,))

    def forget_artifact(self, digest: str) -> None:
        self._drop_preloaded([digest])
        with self.transaction() as c:
            c.execute("DELETE FROM cache WHERE outputs LIKE ?", (f'%"{digest}"%',))

    def artifact_row(self, digest: str) -> dict[str, Any] | None:
        """The artifact's row, its ``meta`` decoded.

        Raises:
            DamagedRecordError: its ``meta`` is not a JSON object.
        """
        row = self._dict_row("SELECT * FROM artifacts WHERE digest=?", (digest,))
        if row is not None:
            row["meta"] = self.decode(row["meta"], f"artifacts.meta of artifact {digest}") or {}
        return row

    def artifact_rows(self) -> list[dict[str, Any]]:
        """Every artifact's row, oldest first, without ``meta`` (``artifact_row`` has it)."""
        return self._dict_rows("SELECT digest, type, materializer, size, checksum, inline, created "
                               "FROM artifacts ORDER BY created", ())

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
            "JOIN steps s ON s.run_id=e.run_id AND s.node=e.node "
            "WHERE e.digest=? AND e.direction='out' ORDER BY r.started, s.position", (digest,))]

    def producer_packages(self, digest: str) -> Any:
        """The package versions the first run that produced ``digest`` recorded (a dict), or None."""
        producers = self.producers(digest)
        row = self.row("SELECT packages FROM runs WHERE run_id=?", (producers[0][0],)) if producers else None
        try:
            return json.loads(row["packages"]) if row and row["packages"] else None
        except (TypeError, ValueError):
            return None  # a damaged record: advice does without the versions

    def consumers(self, digest: str) -> list[tuple[str, str, str]]:
        """(run_id, node, input name) of every step run that read ``digest``, oldest first."""
        return [tuple(r) for r in self.conn.execute(  # type: ignore[misc]
            "SELECT e.run_id, e.node, e.name FROM edges e JOIN runs r ON r.run_id=e.run_id "
            "JOIN steps s ON s.run_id=e.run_id AND s.node=e.node "
            "WHERE e.digest=? AND e.direction='in' ORDER BY r.started, s.position", (digest,))]

    def step_row(self, run_id: str, node: str) -> dict[str, Any]:
        row = self._dict_row("SELECT * FROM steps WHERE run_id=? AND node=?", (run_id, node))
        if row is None:
            raise NotFoundError(self._no_step(run_id, node))
        row["key_parts"] = self.decode(row["key_parts"], f"steps.key_parts of {run_id}:{node}")
        return row

    def step_names(self, run_id: str) -> list[str]:
        """The steps a run recorded, in DAG order."""
        return [r[0] for r in self.conn.execute("SELECT node FROM steps WHERE run_id=? ORDER BY position",
                                                (run_id,))]

    def _no_step(self, run_id: str, node: str) -> str:
        """Why run ``run_id`` has no record of ``node``, and where to look instead."""
        see = f"See its steps with `orch show {run_id[:12]}`."
        nodes = self.step_names(run_id)
        if not node:
            example = f", such as {run_id[:12]}:{nodes[-1]}" if nodes else ""
            return f"no step after ':'. Write RUN:STEP{example}. {see}"
        if node.endswith(".map"):  # as `orch dag` and `--rerun` name a map: its items are the steps
            base = node[:-len(".map")]
            items = [n for n in nodes if n == base or re.fullmatch(re.escape(base) + r"_\d+", n)]
            if items:
                shown = ", ".join(items[:3]) + (f", … ({len(items)} in all)" if len(items) > 3 else "")
                return (f"run {run_id[:12]} has no step '{node}': each item of a map is a step of its own, here "
                        f"{shown}. Name one, such as {run_id[:12]}:{items[-1]}.")
        step, dot, output = node.rpartition(".")
        if dot and step in nodes and output:  # RUN:split.out1, as orch lineage and load take it, given to logs or show
            return (f"run {run_id[:12]} has no step '{node}': a step's output (STEP.OUTPUT) is taken by `orch "
                    f"lineage {run_id[:12]}:{node}` and orchestrator.load; the step is {run_id[:12]}:{step}.")
        run = self.conn.execute("SELECT pipeline, status, file FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if run is not None and run[1] == "running" and node not in nodes:
            # Polled from a second terminal while the run goes on: a step it has not started yet has no
            # record, which is no reason to call it missing from the pipeline.
            return (f"run {run_id[:12]} is still running and has no record of step '{node}' yet: it has not "
                    f"started that step (or its pipeline has none).{did_you_mean(node, nodes)} Ask again once it "
                    f"has; see its steps so far with `orch show {run_id[:12]}`.")
        if run is not None and run[1] in ("interrupted", "failed"):
            # A run stopped by Ctrl-C or a crash records no step it never reached; the step
            # exists if another run of the pipeline has it.
            other = self.conn.execute(
                "SELECT s.run_id FROM steps s JOIN runs r ON r.run_id=s.run_id WHERE r.pipeline=? AND s.node=? "
                "AND s.run_id != ? ORDER BY r.started DESC LIMIT 1", (run[0], node, run_id)).fetchone()
            if other is not None:
                return (f"run {run_id[:12]} ({run[1]}) has no record of step '{node}': it stopped before that "
                        f"step started. The last run that has one is {other[0]}. {see}")
        if run is not None and node not in nodes:
            # Two pipelines share a store: `latest` (or latest~N) may be a run of the other one.
            other = self.conn.execute(
                "SELECT r.run_id, r.pipeline FROM steps s JOIN runs r ON r.run_id=s.run_id WHERE r.pipeline!=? "
                "AND s.node=? ORDER BY r.started DESC LIMIT 1", (run[0], node)).fetchone()
            if other is not None:
                return (f"run {run_id[:12]} is a run of pipeline '{run[0]}', which has no step '{node}'. The last "
                        f"run with that step is {other[0][:12]}, of pipeline '{other[1]}': give {other[0][:12]}:{node} "
                        f"(`orch runs --pipeline {other[1]}` lists its runs).")
        if run is not None and run[1] in ("interrupted", "failed") and node not in nodes:
            return self._not_reached_or_missing(run_id, node, nodes, run[0], run[1], run[2])
        return f"run {run_id[:12]} has no step '{node}'.{did_you_mean(node, nodes)} {see}"

    def _not_reached_or_missing(self, run_id: str, node: str, nodes: list[str], pipeline: str, status: str,
                                file: str | None) -> str:
        """``node`` of a stopped run that no run of its pipeline recorded: not reached, or not a step at all.

        A run records a step once it starts it, and nothing of the steps it planned: which of the two
        it is, the pipeline file tells (``orch plan``), not the store.
        """
        # The steps of the pipeline's last other run are close matches too: the stopped run has few.
        last = self.conn.execute("SELECT run_id FROM runs WHERE pipeline=? AND run_id != ? ORDER BY started DESC "
                                 "LIMIT 1", (pipeline, run_id)).fetchone()
        known = nodes + [n for n in (self.step_names(last[0]) if last else []) if n not in nodes]
        stopped = "was interrupted" if status == "interrupted" else "failed"
        show = f"`orch show {run_id[:12]}`"
        look = (f"`orch plan {shlex.quote(f'{file}:{pipeline}')}` lists the pipeline's steps; {show} those the run "
                "recorded." if file else f"{show} lists the steps the run recorded.")
        return (f"run {run_id[:12]} {stopped} before it recorded step '{node}' (a step it never started has no "
                f"record), or its pipeline has no step '{node}'.{did_you_mean(node, known)} {look}")

    def unrecorded_artifacts(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that have no artifact row: removed by ``orch cache gc`` or ``cache verify --repair``."""
        wanted = set(digests)
        known = {digest for chunk, marks in _in_chunks(sorted(wanted)) for (digest,) in self.conn.execute(
            f"SELECT digest FROM artifacts WHERE digest IN ({marks})", chunk)}
        return wanted - known

    def referenced_digests(self, run_ids: Iterable[str]) -> set[str]:
        """Every artifact digest the given runs read or produced (cached steps included)."""
        self._end_read()
        out: set[str] = set()
        for chunk, marks in _in_chunks(list(run_ids)):
            out.update(r[0] for r in self.conn.execute(
                f"SELECT DISTINCT digest FROM edges WHERE run_id IN ({marks})", chunk))
            # The step run a cached step reused, as recorded with it: the cache entry of its key may
            # name a later run since (a --rerun of a step whose output differs each time), whose
            # objects are not the ones this run's step gave.
            for (origin,) in self.conn.execute(
                f"SELECT DISTINCT origin FROM steps WHERE run_id IN ({marks}) AND status='cached' "
                "AND origin IS NOT NULL AND origin != ''", chunk).fetchall():
                origin_run, _, origin_node = str(origin).partition(":")
                out.update(r[0] for r in self.conn.execute(
                    "SELECT digest FROM edges WHERE run_id=? AND node=?", (origin_run, origin_node)))
            for (run_id, node) in self.conn.execute(
                f"SELECT DISTINCT c.run_id, c.node FROM steps s JOIN cache c ON c.key = s.key "
                f"WHERE s.run_id IN ({marks}) AND s.status='cached'", chunk).fetchall():
                out.update(r[0] for r in self.conn.execute(
                    "SELECT digest FROM edges WHERE run_id=? AND node=?", (run_id, node)))
            for (key, outputs) in self.conn.execute(
                f"SELECT c.key, c.outputs FROM steps s JOIN cache c ON c.key = s.key "
                f"WHERE s.run_id IN ({marks}) AND s.status='cached'", chunk).fetchall():
                # A damaged entry stops gc rather than let it delete what the entry names.
                entries = _cached_outputs(outputs)
                if entries is None:
                    self.decode(outputs, f"cache.outputs of key {key}", list)
                    raise DamagedRecordError(self.path, f"cache.outputs of key {key}",
                                             "not a list of [name, digest, ...] entries")
                out.update(entry.digest for entry in entries)
        return out

    def delete_artifacts(self, digests: Iterable[str]) -> None:
        """Forget artifacts: their rows, and every cache entry that names one (its step runs again).

        The cache index is read once, whatever the number of artifacts: ``cache gc`` removes
        thousands at a time, and a scan of the index per artifact took minutes on a store with
        months of history. An entry is matched as a text search for ``"DIGEST"`` would match it,
        so a damaged entry naming a removed artifact goes too.
        """
        digests = list(digests)
        self._drop_preloaded(digests)
        with self.transaction() as c:
            c.executemany("DELETE FROM artifacts WHERE digest=?", [(d,) for d in digests])
            gone = {d.lower() for d in digests}
            if gone:
                stale = [(key,) for key, outputs in c.execute("SELECT key, outputs FROM cache").fetchall()
                         if not gone.isdisjoint(_quoted(outputs))]
                c.executemany("DELETE FROM cache WHERE key=?", stale)

    # -- file memo ----------------------------------------------------------

    def load_file_memo(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT memo_key, digest FROM file_memo").fetchall())

    def save_file_memo(self, entries: dict[str, str]) -> None:
        # A file whose name is not UTF-8 (`os.listdir` gives it with lone surrogates) has no memo:
        # SQLite cannot hold its name, so it is read again at each run rather than failing the run.
        rows = [(key, digest) for key, digest in entries.items() if _storable(key) is key]
        if rows:
            with self.transaction() as c:
                c.executemany("INSERT OR REPLACE INTO file_memo VALUES (?, ?)", rows)

    # -- helpers ------------------------------------------------------------

    def decode(self, text: str | bytes | None, what: str, expect: type | tuple[type, ...] = dict) -> Any:
        """A JSON column's value, checked (see ``decode_column``); None for NULL.

        Raises:
            DamagedRecordError: it does not decode, or is not of the kind ``expect``.
        """
        return decode_column(text, what, expect, self.path)

    def damaged_values(self, columns: Iterable[tuple[str, str]] | None = None) -> list[DamagedValue]:
        """Every JSON value of the database that does not decode to its kind (``orch doctor``).

        Reads each JSON column once, whole: a large store takes a few seconds.
        """
        found: list[DamagedValue] = []
        for table, column in columns if columns is not None else JSON_COLUMNS:
            kind, names = JSON_COLUMNS[(table, column)]
            selected = ", ".join(names)
            for row in self.conn.execute(f"SELECT {column}, {selected} FROM {table} WHERE {column} IS NOT NULL "
                                         f"AND {column} != ''"):
                try:
                    decode_column(row[0], "", kind)
                    if (table, column) == ("cache", "outputs") and _cached_outputs(row[0]) is None:
                        raise DamagedRecordError(self.path, "", "not a list of [name, digest, ...] entries")
                    if (table, column) == ("runs", "result"):
                        _check_result(row[0])
                except DamagedRecordError as exc:
                    where = " AND ".join(f"{name} = {_sql_literal(value)}" for name, value in zip(names, row[1:]))
                    found.append(DamagedValue(table, column, where, row[1], exc.detail))
        return found

    def integrity_check(self) -> str:
        """``ok``, or SQLite's first complaint about the file.

        Raises:
            DamagedDatabaseError: the file cannot even be read as a database.
        """
        try:
            return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            error = database_error(self.path, exc, self.spelling)
            if error is None:
                raise
            raise error from exc

    def rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query; each row as a dict of column name to value."""
        return self._dict_rows(sql, args)

    def row(self, sql: str, args: Iterable[Any] = ()) -> dict[str, Any] | None:
        """Run a read query for one row (the first), as a dict, or None."""
        return self._dict_row(sql, args)

    def _dict_rows(self, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, tuple(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def _dict_row(self, sql: str, args: Iterable[Any]) -> dict[str, Any] | None:
        rows = self._dict_rows(sql, args)
        return rows[0] if rows else None


def _quoted(text: str | bytes | None) -> set[str]:
    """Every text between two double quotes in ``text`` (overlapping ones too), lowercased.

    ``"d" in text`` for any ``d`` without a quote, as SQL's ``LIKE '%"d"%'`` tests it, is
    ``d in _quoted(text)``, for valid JSON and for a damaged value alike.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return set(_BETWEEN_QUOTES.findall(text.lower())) if text else set()


_BETWEEN_QUOTES = re.compile(r'(?="([^"]*)")')


def _cached_outputs(text: str | bytes) -> list[CachedOutput] | None:
    """The outputs a cache entry records, or None when it is damaged (see ``decode_column``).

    On the hot path of a cached run, so checked in the one pass that builds
    the entries: as fast as decoding without checks.
    """
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError, TypeError):  # not JSON, too deep, too long an integer
        return None
    if type(entries) is not list:
        return None
    outputs = []
    for entry in entries:
        if type(entry) is not list or len(entry) < 3 or type(entry[1]) is not str:
            return None
        outputs.append(CachedOutput(*entry[:4]))
    return outputs


def _check_result(text: str | bytes) -> None:
    """Raise ``DamagedRecordError`` unless ``runs.result`` holds what ``result_record.encode`` writes."""
    try:
        result_record.decode_record(decode_column(text, "", dict), lambda *leaf: None)
    except ValueError as exc:
        raise DamagedRecordError(None, "", f"not a recorded result ({exc})") from None


def _text_keys(value: Any) -> Any:
    """``value`` with every dict key JSON cannot take (a tuple, an Enum) as its text.

    A pipeline may return ``{("a", 1): model}``; its run must still be recorded.
    """
    if isinstance(value, dict):
        return {k if k is None or isinstance(k, (str, int, float, bool)) else str(k): _text_keys(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(v) for v in value]
    return value


def _sql_literal(value: Any) -> str:
    """``value`` as SQL, for a command the user runs (``orch doctor``'s fix)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    text = str(value)
    return "'" + text.replace("'", "''") + "'"


def _natural(name: str) -> tuple[Any, ...]:
    """Sort key that orders the numbers inside a name by value: ``xs[2]`` before ``xs[10]``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _implied_attempt(record: StepRecord, tries: tuple[AttemptRecord, ...]) -> bool:
    """Whether the step's own row says all there is about its attempts: one, which succeeded quietly.

    Most steps run once and print nothing; not writing that attempt's row
    saves a quarter of the rows a step run costs. ``attempts`` rebuilds it.
    """
    if len(tries) != 1 or record.status != "ran" or record.attempts != 1:
        return False
    a = tries[0]
    return a.status == "succeeded" and a.attempt == 1 and not (a.stdout or a.stderr or a.logs or a.traceback)


def _signatures(infos: Iterable[Any]) -> list[tuple[str, str]]:
    """(digest, hmac) of each artifact whose materializer unpickles (or may: any but the built-ins)."""
    from orchestrator import signing
    from orchestrator.serialize import needs_signature

    return [(info.digest, signing.sign(info)) for info in infos if needs_signature(info.materializer)]


def _edge(edge: tuple[str, str, str, str | None]) -> dict[str, str]:
    _, name, digest, path = edge
    return {"name": name, "hash": digest, **({"path": path} if path else {})}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """``value``, or text as SQLite's UTF-8 can hold it: a lone surrogate becomes U+FFFD.

    ``os.listdir`` and ``os.fsdecode`` turn a file name's non-UTF-8 bytes into lone
    surrogates (``caf\\udce9.csv``); printed or raised by a step, they reached the
    attempt's record, and SQLite's encoder refused the whole flush.
    """
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def _sql(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    return json.dumps(value, default=str)


def _runs_where(pipeline: str | None, statuses: Sequence[str], since: float | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its values) of the runs of ``pipeline``, with one of ``statuses``, started since
    ``since``; empty for all."""
    clauses: list[str] = []
    args: list[Any] = []
    if pipeline:
        clauses.append("pipeline=?")
        args.append(pipeline)
    if statuses:
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        args.extend(statuses)
    if since is not None:
        clauses.append("started >= ?")
        args.append(since)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _in_chunks(values: list[str], size: int = 500) -> Iterator[tuple[list[str], str]]:
    """``values`` in lists of at most ``size``, each with its ``?,?,…`` for an ``IN (…)``: SQLite caps a
    statement's parameters (999 in older builds)."""
    for i in range(0, len(values), size):
        chunk = values[i:i + size]
        yield chunk, ",".join("?" * len(chunk))
