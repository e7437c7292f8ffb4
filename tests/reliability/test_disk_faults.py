"""Issue 5, item 10: a full disk or a failing device, at every write, fsync and rename of a run.

``orchestrator.store.inject_fault`` (the in-process form of ``ORCH_FAULT``)
fails the Nth write, fsync or rename of object files with ENOSPC or EIO,
for every N the run reaches (a seeded sample of them when there are more
than ``SAMPLE``). Each time: the run fails with a clear one-line error
naming the cause, no partial object exists, the database is consistent, and
a run without the fault then succeeds. One more case goes through ``orch``
with ``ORCH_FAULT`` to check what the user sees.
"""

from __future__ import annotations

import random

import pytest

from orchestrator import store as store_module
from orchestrator.loader import load_pipeline
from tests.reliability.helpers import no_traceback, store_problems

SAMPLE = 12


@pytest.fixture
def typed(project):
    return load_pipeline(str(project / "typed.py"))


def _run(pipeline, root):
    run = pipeline.run(store=str(root))
    return run


@pytest.mark.slow
def test_every_nth_write_fsync_rename_fails_cleanly(typed, tmp_path, monkeypatch, figure):
    monkeypatch.setenv("ORCH_TEST_LOG", str(tmp_path / "calls.log"))
    rng = random.Random(10)
    faults = survived = lost = 0
    failures = []
    for op, reason in (("write", "No space left on device"), ("fsync", "Input/output error"),
                       ("rename", "No space left on device")):
        counter = store_module.inject_fault(f"{op}:1000000000")
        try:
            assert _run(typed, tmp_path / f"count-{op}").status == "succeeded"
        finally:
            store_module.inject_fault(None)
        total = counter.count
        assert total > 0, op
        points = list(range(1, total + 1))
        if len(points) > SAMPLE:
            points = sorted({1, total, *rng.sample(points, SAMPLE - 2)})
        for n in points:
            root = tmp_path / f"{op}-{n}"
            store_module.inject_fault(f"{op}:{n}")
            try:
                run = _run(typed, root)
            finally:
                store_module.inject_fault(None)
            faults += 1
            problems = store_problems(root, temp_allowed=False)
            clear = run.status == "failed" and reason in (run.error or "") and "\n" not in (run.error or "")
            again = _run(typed, root)
            ok = clear and not problems and again.status == "succeeded" and not store_problems(root)
            survived += ok
            lost += bool(problems)
            if not ok:
                failures.append((op, n, run.status, run.error, problems, again.status))
    figure(faults=faults, survived=survived, data_lost=lost)
    assert not failures and survived == faults, failures[:3]


def test_fault_through_the_cli_is_one_clear_line(orch, store):
    orch.env = {**orch.env, "ORCH_FAULT": "fsync:1"}
    result = orch("run", "typed.py")
    assert result.returncode == 1 and no_traceback(result)
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Input/output error" in error[0] and "step 'table' failed" in error[0], result.stderr
    orch.env = {k: v for k, v in orch.env.items() if k != "ORCH_FAULT"}
    assert orch("run", "typed.py").returncode == 0
    assert not store_problems(store)
