"""Issue 5, item 15: two ``orch run`` at once on one store, and ``orch cache gc`` during them.

Both runs finish; gc, run while they are in progress, deletes nothing they
use: afterwards the store verifies and re-running both is all cache hits.
On the process pool the steps run in pool workers, which write objects while
only their driver holds the per-key locks and the run rows gc consults.
"""

from __future__ import annotations

import time

import pytest

from orchestrator.context import Context
from tests.reliability.helpers import start, store_problems, wait_for

EXECUTOR_ARGS = {"sequential": (), "process": ("--executor", "process", "--workers", "1")}


@pytest.mark.slow
@pytest.mark.parametrize("executor", list(EXECUTOR_ARGS))
def test_two_runs_and_gc_at_once(orch, calls, store, figure, executor):
    extra = EXECUTOR_ARGS[executor]
    old = orch("run", "slow.py", "-p", "n=4000000", "-p", "seconds=0", *extra)
    assert old.returncode == 0, old.stderr
    time.sleep(1.2)  # gc spares what was written within a second of a running run's start
    calls.clear()
    a = start(orch, "run", "slow.py", "-p", "n=5000000", "-p", "seconds=2", *extra)
    b = start(orch, "run", "slow.py", "-p", "n=6000000", "-p", "seconds=2", *extra)
    assert wait_for(lambda: calls.counts()["wait"] >= 2, timeout=60)
    gc = orch("cache", "gc", "--keep-last", "0")
    codes = [a.wait(timeout=60), b.wait(timeout=60)]
    faults = 3
    survived = (codes[0] == 0) + (codes[1] == 0) + (gc.returncode == 0)
    problems = store_problems(store)
    calls.clear()
    again = [orch("run", "slow.py", "-p", f"n={n}", "-p", "seconds=2", *extra) for n in (5000000, 6000000)]
    lost = len(calls.ran()) + len(problems)  # anything gc took from a run shows as a re-run or damage
    figure(faults=faults, survived=survived, data_lost=lost)
    assert survived == faults and lost == 0, (codes, gc.stdout, gc.stderr, problems, calls.ran())
    assert all(r.returncode == 0 for r in again)
    assert "removed 2 artifacts" in gc.stdout  # only the first, finished run's outputs
    ctx = Context.open(store)
    runs = ctx.lineage.conn.execute("SELECT DISTINCT executor, status FROM runs").fetchall()
    ctx.lineage.close()
    assert runs == [(executor, "succeeded")], runs
