"""`orch cache gc --keep-last N`: what a user keeps is their last good runs, and a failed run's progress."""

from __future__ import annotations

from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.maintenance import collect_garbage

from .conftest import PIPELINES


def _run(store, **params):
    return load_pipeline(str(PIPELINES / "gc_runs.py")).run(store=str(store), **params)


def test_keep_last_counts_succeeded_runs_and_spares_newer_failures(store):
    old = _run(store, n=1)
    good = _run(store, n=2)
    failed = _run(store, n=3, fail=True)  # newest: its `make` finished, `check` failed
    assert (old.status, good.status, failed.status) == ("succeeded", "succeeded", "failed")
    ctx = Context.open(store)

    result = collect_garbage(ctx, keep_last=1)

    assert result.removed == [old.steps["make"].outputs["out"]]
    assert ctx.store.has(good.steps["make"].outputs["out"])
    assert ctx.store.has(failed.steps["make"].outputs["out"])  # the next run resumes from it
    again = _run(store, n=3, fail=False)
    assert again.steps["make"].status == "cached"


def test_keep_last_with_no_succeeded_run_keeps_everything(store):
    first = _run(store, n=1, fail=True)
    second = _run(store, n=2, fail=True)
    result = collect_garbage(Context.open(store), keep_last=1)
    assert result.removed == []
    assert first.status == second.status == "failed"
