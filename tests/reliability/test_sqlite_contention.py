"""Issue 5, item 4: 8 processes × 200 writes to one metadata database, starting with its first open.

Phase 1: eight forked processes open a database that does not exist yet
(creating it and its schema concurrently) and commit 200 step records each.
Before that, 15 more rounds of eight concurrent first opens (one
write each) make the creation race likely to be hit. Phase 2: the parent opens the database, then forks eight processes that use
the same ``Lineage`` object (a connection must never be carried across
fork) for 200 read-then-write updates each of one shared row. Every row and
every update must be there, and no "database is locked" may reach a caller.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
import traceback

from orchestrator.lineage_db import Lineage, StepRecord

PROCESSES = 8
WRITES = 200


def _record_steps(path, index, barrier, queue, writes=WRITES):
    try:
        barrier.wait()
        time.sleep(random.uniform(0, 0.01))  # spread the first opens over the migration's window
        lineage = Lineage(path)
        lineage.mark_dead_runs()  # what every command does first
        for j in range(writes):
            lineage.record_step(StepRecord(f"run{index}", f"node{j}", "step", "site", "ran"))
        queue.put(None)
    except Exception:
        queue.put(traceback.format_exc())


def _update_shared(lineage, index, barrier, queue):
    try:
        barrier.wait()
        for j in range(WRITES):
            lineage.set_run_metrics("shared", {f"p{index}_{j}": j})  # BEGIN IMMEDIATE read-then-write
        queue.put(None)
    except Exception:
        queue.put(traceback.format_exc())


def _spawn(ctx, target, args_of):
    barrier, queue = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = []
    for i in range(PROCESSES):
        args = args_of(i)
        procs.append(ctx.Process(target=target, args=(*args[:2], barrier, queue, *args[2:])))
    for p in procs:
        p.start()
    errors = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return [e for e in errors if e]


def test_sqlite_contention(tmp_path, figure):
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "store" / "metadata.db"
    errors = _spawn(ctx, _record_steps, lambda i: (str(path), i))
    first_opens = 15
    for round_ in range(first_opens):
        fresh = tmp_path / f"fresh{round_}" / "metadata.db"
        errors += _spawn(ctx, _record_steps, lambda i, fresh=fresh: (str(fresh), i, 1))
        errors += [f"round {round_}: missing rows"] * (Lineage(fresh).conn.execute(
            "SELECT COUNT(*) FROM steps").fetchone()[0] != PROCESSES)

    lineage = Lineage(path)
    lineage.start_run({"run_id": "shared", "pipeline": "p", "status": "running", "started": 0.0})
    assert lineage.conn is not None  # opened in the parent, then inherited by every child
    errors += _spawn(ctx, _update_shared, lambda i: (lineage, i))

    rows = lineage.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    metrics = json.loads(lineage.conn.execute("SELECT metrics FROM runs WHERE run_id='shared'").fetchone()[0])
    writes = 2 * PROCESSES * WRITES + first_opens * PROCESSES
    present = rows + len(metrics) + first_opens * PROCESSES - sum("missing rows" in e for e in errors) * PROCESSES
    locked = sum("database is locked" in e for e in errors)
    figure(faults=writes, survived=present, data_lost=writes - present)
    assert not errors, errors[0]
    assert locked == 0 and present == writes
    assert lineage.integrity_check() == "ok"
