"""Figures 1-4: what the run loop costs per step, and per run.

A chain of trivial steps (``inc(inc(inc(...)))``) spends almost all its time
in the orchestrator: keys, cache lookups, the store, lineage records. It is
run on a fresh store with caching and lineage on, with ``cache=False``, and
fully cached; the same chain with every write made durable runs in a child
process so that its settings (read from the environment when the store
opens) cannot leak into the other figures. A 1-step pipeline gives the fixed
cost of one run. Baselines: the same function called as plain Python, and one
atomic small-file write. This module measures; it asserts nothing about time.

Run alone with ``benchmarks/run.py --only chain``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import Figure, Stores, at_most, median_time, per_call, progress, temp_dir, timed

from orchestrator import pipeline, step
from orchestrator.pipeline import Pipeline

NAME = "chain"
TITLE = "chains of trivial steps, and the fixed cost of a run (figures 1-4)"

STEPS = 1000
FSYNC_STEPS, FSYNC_STEPS_QUICK = 1000, 200
FIXED_RUNS = 20
SMALL_FILE = b"x" * 100


@step
def inc(x: int) -> int:
    return x + 1


@step(cache=False)
def inc_uncached(x: int) -> int:
    return x + 1


@step
def double(x: int) -> int:
    return 2 * x


@pipeline
def chain(steps: int = STEPS, start: int = 0):
    x = start
    for _ in range(steps):
        x = inc(x)
    return x


@pipeline
def uncached_chain(steps: int = STEPS, start: int = 0):
    x = start
    for _ in range(steps):
        x = inc_uncached(x)
    return x


@pipeline
def single(x: int = 0):
    return double(x)


def run(quick: bool) -> list[Figure]:
    reps = 5
    with temp_dir(NAME) as root:
        stores = Stores(root)
        _warm_up(stores)

        progress(f"{STEPS}-step chain on fresh stores, then fully cached re-runs ({reps}×)")
        fresh, cached = [], []
        for _ in range(reps):
            store = stores.fresh("chain")
            fresh.append(timed(lambda: _run(chain, store, steps=STEPS)))
            cached.append(timed(lambda: _run(chain, store, steps=STEPS)))
        progress(f"{STEPS}-step chain with cache=False ({reps}×)")
        uncached = []
        for _ in range(reps):
            store = stores.fresh("uncached")
            uncached.append(timed(lambda: _run(uncached_chain, store, steps=STEPS)))
        progress("baseline: the rows of the last cache=False run, inserted into fresh databases")
        rows_floor = statistics.median(_insert_rows(Path(store), root / f"rows-{i}") for i in range(reps))
        fsync_steps = FSYNC_STEPS_QUICK if quick else FSYNC_STEPS
        progress(f"{fsync_steps}-step chain with ORCH_FSYNC=all ORCH_COMMIT_BUDGET=0 (child process)")
        durable = _durable_chain_seconds(root / "durable", fsync_steps)

        progress("1-step pipeline: fixed cost of a run")
        first_runs = [timed(lambda: _run(single, stores.fresh("single"), x=0)) for _ in range(5)]
        store = stores.fresh("single")
        _run(single, store, x=0)
        values = iter(range(1, FIXED_RUNS + 1))  # a new parameter each time, so the step runs
        fixed = statistics.median(timed(lambda: _run(single, store, x=next(values)))
                                  for _ in range(FIXED_RUNS))

        progress("baselines: plain calls, atomic small-file writes")
        plain_step = median_time(lambda: _plain_chain(STEPS), 20) / STEPS
        plain_single = per_call(lambda: single(3), 1000)
        write_plain = _atomic_writes(root / "files-plain", 2000, fsync=False)
        write_durable = _atomic_writes(root / "files-fsync", 200, fsync=True)

    us = 1e6
    fresh_step = statistics.median(fresh) / STEPS * us
    cached_step = statistics.median(cached) / STEPS * us
    uncached_step = statistics.median(uncached) / STEPS * us
    durable_step = durable / fsync_steps * us
    return [
        Figure("chain.per_step", f"1  {STEPS:,}-step chain, fresh store: per step", fresh_step, "µs",
               plain_step * us, "plain call", "≤ 200 µs", at_most(fresh_step, 200),
               note=f"median of {reps} runs, total time / steps (includes the run's fixed cost); "
                    f"{statistics.median(fresh) * 1e3:.0f} ms per run"),
        Figure("chain.fsync_all_per_step", "1b same, ORCH_FSYNC=all ORCH_COMMIT_BUDGET=0: per step",
               durable_step, "µs", write_durable * us, "atomic write + fsync",
               note=f"{fsync_steps:,} steps in a child process; {durable:.2f} s per run"),
        Figure("baseline.atomic_write", "1c baseline: atomic 100 B file write (temp + rename)",
               write_plain * us, "µs", note="median per write over 5 batches of 2,000, no fsync"),
        Figure("baseline.atomic_write_fsync", "1d baseline: same + fsync of file and folder",
               write_durable * us, "µs", note="median per write over 5 batches of 200"),
        Figure("chain.uncached_per_step", f"2  {STEPS:,}-step chain, cache=False: per step",
               uncached_step, "µs", plain_step * us, "plain call", "≤ 20 µs",
               at_most(uncached_step, 20), note=f"median of {reps} runs on fresh stores"),
        Figure("baseline.uncached_rows", "2a baseline: that run's SQLite rows alone, per step",
               rows_floor / STEPS * us, "µs",
               note="the steps, edges and artifacts rows one cache=False run wrote, read back and "
                    "inserted into a fresh metadata.db (executemany, 512 steps per transaction); "
                    f"median of {reps}"),
        Figure("run.fixed_ms", "3  fixed cost of a run: 1-step pipeline", fixed * 1e3, "ms",
               plain_single * 1e3, "plain call of the body", "≤ 20 ms", at_most(fixed * 1e3, 20),
               note=f"median of {FIXED_RUNS} runs in one store, a new parameter each run so the step runs"),
        Figure("run.fixed_fresh_store_ms", "3b same, first run on a fresh store",
               statistics.median(first_runs) * 1e3, "ms",
               note="median of 5 fresh stores; includes creating metadata.db"),
        Figure("chain.cached_per_step", f"4  {STEPS:,}-step chain, fully cached re-run: per step",
               cached_step, "µs", plain_step * us, "plain call", "≤ 30 µs", at_most(cached_step, 30),
               note=f"median of {reps} re-runs; {statistics.median(cached) * 1e3:.0f} ms per run"),
    ]


def _run(p: Pipeline, store: str, **params: Any) -> None:
    result = p.run(store=store, **params)
    if result.status != "succeeded":
        raise RuntimeError(f"benchmark pipeline {p.name} {result.status}: {result.error}")


def _warm_up(stores: Stores) -> None:
    """Pay imports, fingerprints and first-use costs outside the timed runs."""
    store = stores.fresh("warm-up")
    for _ in range(2):
        _run(chain, store, steps=5, start=-10)
    _run(uncached_chain, store, steps=5, start=-10)
    _run(single, store, x=-1)


def _plain_chain(steps: int) -> int:
    fn = inc.fn
    x = 0
    for _ in range(steps):
        x = fn(x)
    return x


def _insert_rows(store: Path, folder: Path) -> float:
    """Seconds to write, into a fresh database, exactly the lineage rows of the store's last run.

    A floor under figure 2: SQLite's own cost for the records of an uncached
    step, without any of the run loop's work.
    """
    from orchestrator.lineage_schema import open_database

    source = sqlite3.connect(store / "metadata.db")
    try:
        [run_id] = source.execute("SELECT run_id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
        steps = source.execute("SELECT * FROM steps WHERE run_id=? ORDER BY position", (run_id,)).fetchall()
        edges: dict[str, list[Any]] = {}
        for edge in source.execute("SELECT * FROM edges WHERE run_id=?", (run_id,)):
            edges.setdefault(edge[1], []).append(edge)
        artifacts = {row[0]: row for row in source.execute("SELECT * FROM artifacts")}
        attempts: dict[str, list[Any]] = {}
        for attempt in source.execute("SELECT * FROM attempts WHERE run_id=?", (run_id,)):
            attempts.setdefault(attempt[1], []).append(attempt)
    finally:
        source.close()
    batches = []
    for start in range(0, len(steps), 512):
        batch = steps[start:start + 512]
        nodes = [row[1] for row in batch]
        batch_edges = [e for n in nodes for e in edges.get(n, [])]
        batch_artifacts = [artifacts[e[4]] for e in batch_edges if e[2] == "out" and e[4] in artifacts]
        batches.append((batch, batch_edges, [a for n in nodes for a in attempts.get(n, [])], batch_artifacts))
    folder.mkdir(parents=True)
    conn = open_database(folder / "metadata.db", "NORMAL")
    try:
        start = time.perf_counter()
        for batch, batch_edges, batch_attempts, batch_artifacts in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"INSERT OR REPLACE INTO steps VALUES ({_marks(batch)})", batch)
            conn.executemany(f"INSERT OR REPLACE INTO edges VALUES ({_marks(batch_edges)})", batch_edges)
            if batch_attempts:
                conn.executemany(f"INSERT OR REPLACE INTO attempts VALUES ({_marks(batch_attempts)})", batch_attempts)
            conn.executemany(f"INSERT OR REPLACE INTO artifacts VALUES ({_marks(batch_artifacts)})", batch_artifacts)
            conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def _marks(rows: list[Any]) -> str:
    """``?,?,...`` for rows read back with ``SELECT *``: as many as the table has columns."""
    return ",".join("?" * len(rows[0])) if rows else "?"


def _atomic_writes(folder: Path, count: int, *, fsync: bool, batches: int = 5) -> float:
    """Median seconds per atomic write of a 100-byte file: write a temp file, rename it into place."""
    folder.mkdir(parents=True)
    times = []
    for batch in range(batches):
        start = time.perf_counter()
        for i in range(count):
            temp, final = folder / f"{batch}-{i}.tmp", folder / f"{batch}-{i}.obj"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, SMALL_FILE)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, final)
            if fsync:
                dir_fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        times.append((time.perf_counter() - start) / count)
    return statistics.median(times)


def _durable_chain_seconds(folder: Path, steps: int) -> float:
    """Time the chain in a child whose environment asks for a durable commit before every step."""
    env = {**os.environ, "ORCH_FSYNC": "all", "ORCH_COMMIT_BUDGET": "0"}
    child = subprocess.run(
        [sys.executable, __file__, "--durable-child", str(steps), str(folder)],
        env=env, capture_output=True, text=True, check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"durable chain child failed:\n{child.stderr}")
    return float(json.loads(child.stdout.strip().splitlines()[-1])["seconds"])


def _durable_child(steps: int, folder: Path) -> None:
    stores = Stores(folder)
    folder.mkdir(parents=True)
    _warm_up(stores)
    seconds = timed(lambda: _run(chain, stores.fresh("chain"), steps=steps))
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--durable-child":
        _durable_child(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: run the suite with benchmarks/run.py [--only chain]")
