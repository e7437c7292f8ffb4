"""Issue 5, item 8, on the process pool and on Dask: a killed worker is an attempt that publishes nothing.

A step with ``retries=1`` whose worker ``os._exit()``\\ s once, either in the
middle of the step or after its first output is already written to the store
(while the second is being stored), succeeds on attempt 2. The run records
two attempts, the first failed as a dead worker, and nothing of attempt 1 is
published: no artifact row, output edge or cache entry names its output.
"""

from __future__ import annotations

import json

import pytest

from orchestrator.context import Context
from orchestrator.hashing import hash_value
from tests.reliability.helpers import store_problems

N = 100_000
CASES = [  # pipeline, step, the digests attempt 2 publishes, what attempt 1 may have written
    ("mid_step", "exits", [hash_value(b"second-attempt" * N)], None),
    ("mid_store", "exits_storing", [hash_value(b"attempt-two" * N), hash_value(N)], hash_value(b"attempt-one" * N)),
]


def _published(ctx: Context, digest: str) -> int:
    """How many places of the store's index name ``digest``: artifact rows, edges, cache entries."""
    conn = ctx.lineage.conn
    return (conn.execute("SELECT COUNT(*) FROM artifacts WHERE digest=?", (digest,)).fetchone()[0]
            + conn.execute("SELECT COUNT(*) FROM edges WHERE digest=?", (digest,)).fetchone()[0]
            + conn.execute("SELECT COUNT(*) FROM cache WHERE outputs LIKE ?", (f"%{digest}%",)).fetchone()[0])


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "dask"])
def test_killed_worker_is_an_attempt(orch, calls, store, executor, figure):
    if executor == "dask":
        pytest.importorskip("distributed")
    faults = survived = lost = 0
    failures = []
    for pipeline, name, expected, stray in CASES:
        calls.clear()
        result = orch("run", f"worker_death.py:{pipeline}", "-p", f"n={N}", "--executor", executor,
                      "--workers", "1", "--json")
        faults += 1
        shown = json.loads(orch("show", "latest", "--json").stdout)
        step = next(s for s in shown["steps"] if s["name"] == name)
        ctx = Context.open(store)
        try:
            attempts = ctx.lineage.attempts(shown["run_id"], name)
            outputs = [o["hash"] for o in step["outputs"]]
            if stray is not None:
                lost += _published(ctx, stray) > 0
            lost += outputs != expected
            problems = store_problems(store)
        finally:
            ctx.lineage.close()
        ok = (result.returncode == 0 and step["attempts"] == 2 and calls.counts()[name] == 2
              and [a["status"] for a in attempts] == ["failed", "succeeded"]
              and "WorkerDiedError" in (attempts[0]["error"] or "") and shown["executor"] == executor
              and not problems)
        survived += ok
        if not ok:
            failures.append((pipeline, result.returncode, result.stderr[-1500:], attempts, problems))
    figure(faults=faults, survived=survived, data_lost=lost)
    assert survived == faults and lost == 0, failures
