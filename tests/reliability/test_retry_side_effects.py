"""Issue 5, item 8: failed attempts never publish outputs; retries=0 runs once; a killed worker is an attempt.

- ``two_outputs`` stores its first output and then fails on its second, so
  attempt 1 fails; attempt 2 succeeds. Nothing of attempt 1 may be recorded:
  no artifact row, output edge or cache entry.
- ``once`` (``retries=0``) fails: it runs exactly once.
- ``dies`` (``timeout`` set, so it runs in a child) kills its own worker in
  attempt 1; that counts as an attempt, and attempt 2 succeeds.
"""

from __future__ import annotations

import json

from orchestrator.context import Context
from tests.reliability.helpers import store_problems


def _show(orch):
    return json.loads(orch("show", "latest", "--json").stdout)


def test_retry_side_effects(orch, calls, store, figure):
    faults = survived = lost = 0

    result = orch("run", "retry_effects.py:outputs", "-p", "n=1000")
    faults += 1
    step = _show(orch)["steps"][0]
    ctx = Context.open(store)
    rows = {r["digest"] for r in ctx.lineage.artifact_rows()}
    published = {o["hash"] for o in step["outputs"]}
    attempts = ctx.lineage.attempts(_show(orch)["run_id"], "two_outputs")
    from orchestrator.hashing import hash_value

    stray = hash_value(b"attempt-one" * 1000)  # attempt 1's first output
    lost += stray in rows or stray in published
    lost += bool(ctx.lineage.conn.execute("SELECT COUNT(*) FROM cache WHERE outputs LIKE ?",
                                          (f"%{stray}%",)).fetchone()[0])
    survived += (result.returncode == 0 and step["attempts"] == 2 and [a["status"] for a in attempts]
                 == ["failed", "succeeded"] and rows == published and not store_problems(store))
    assert "generator" in (attempts[0]["error"] or ""), attempts[0]

    calls.clear()
    result = orch("run", "retry_effects.py:no_retry")
    faults += 1
    step = _show(orch)["steps"][0]
    survived += result.returncode == 1 and calls.counts()["once"] == 1 and step["attempts"] == 1
    lost += bool(step["outputs"])

    calls.clear()
    result = orch("run", "retry_effects.py:killed_worker", "-p", "n=1000")
    faults += 1
    run = _show(orch)
    step = run["steps"][0]
    attempts = Context.open(store).lineage.attempts(run["run_id"], "dies")
    survived += (result.returncode == 0 and step["attempts"] == 2 and calls.counts()["dies"] == 2
                 and "died" in (attempts[0]["error"] or "") and not store_problems(store))
    figure(faults=faults, survived=survived, data_lost=lost)
    assert survived == faults and lost == 0, (result.stderr, attempts)
