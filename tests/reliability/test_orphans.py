"""Issue 5, item 2: a process killed between writing an object and recording its row (and the reverse).

``ORCH_FAULT=after-object:N`` ends ``orch run`` with ``os._exit(137)`` right
after its Nth object is published, before a row records it. The re-run
adopts the orphan once it verifies, or replaces it when it is damaged. The
reverse (a row whose object is gone, as after a lost unsynced write) is a
cache miss, or a repair of the producer when a consumer needs it: never a
crash.
"""

from __future__ import annotations

import json

from orchestrator.context import Context
from tests.reliability.helpers import statuses, store_problems


def _run(orch, *args, fault=None):
    env = {**orch.env, "ORCH_FAULT": fault} if fault else orch.env
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(orch.store), "run", "orphans.py",
                           *args, "--json"], cwd=orch.cwd, env=env, capture_output=True, text=True, timeout=120)


def _outputs(result):
    return {s["name"]: s["outputs"][0]["hash"] for s in json.loads(result.stdout)["steps"]}


def _recorded(store, digest):
    ctx = Context.open(store)
    try:
        return ctx.lineage.artifact_row(digest)
    finally:
        ctx.lineage.close()


def test_orphans_and_rows_without_objects(orch, calls, store, figure):
    faults = survived = lost = 0

    def check(result, expect_ran, scenario):
        nonlocal survived, lost
        ran = calls.ran()
        calls.clear()
        ok = result.returncode == 0 and not store_problems(store) and ran == expect_ran
        survived += ok
        lost += result.returncode != 0
        assert ok, (scenario, result.returncode, ran, store_problems(store), result.stderr[-1500:])
        return _outputs(result)

    def unfinished():
        """The steps the killed run had not recorded as finished: exactly these must re-run."""
        return {"first", "second", "third"} - {n for n, s in statuses(orch).items() if s == "ran"}

    # 1. Killed right after the first object is published: an orphan without a row.
    faults += 1
    killed = _run(orch, fault="after-object:1")
    assert killed.returncode == 137, killed.stderr
    orphans = list(Context.open(store).store.iter_objects())
    assert len(orphans) == 1 and _recorded(store, orphans[0]) is None
    calls.clear()
    expected = unfinished()
    digests = check(_run(orch), expected, "adopt")
    assert digests["first"] == orphans[0] and _recorded(store, orphans[0]) is not None  # adopted and recorded

    # 2. Killed after an object is published, and that orphan is then damaged: it is replaced.
    faults += 1
    killed = _run(orch, "-p", "n=2000000", fault="after-object:2")  # first and second written, not recorded
    assert killed.returncode == 137
    calls.clear()
    ctx = Context.open(store)
    recorded = {r["digest"] for r in ctx.lineage.artifact_rows()}
    orphan = next(d for d in ctx.store.iter_objects() if d not in recorded)
    path = ctx.store.path_of(orphan)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    expected = unfinished()
    check(_run(orch, "-p", "n=2000000"), expected, "replace damaged orphan")
    assert ctx.store.verify(orphan) is None

    # 3. The reverse: a row whose object is gone is a miss, not a crash.
    faults += 1
    (ctx.store.path_of(digests["first"])).unlink()
    check(_run(orch), {"first"}, "row without object: miss")  # same output, so the rest stays cached

    # 4. A row without its object, needed by a consumer that re-runs: the producer is recomputed.
    faults += 1
    (ctx.store.path_of(digests["second"])).unlink()
    check(_run(orch, "-p", "k=1"), {"second", "third"}, "row without object: repair")
    assert statuses(orch)["first"] == "cached"

    figure(faults=faults, survived=survived, data_lost=lost)
    assert survived == faults and lost == 0
