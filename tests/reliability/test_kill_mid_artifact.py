"""Issue 5, item 1: SIGKILL a run while it writes a ~200 MB artifact, at random moments; re-run each time.

No partial file ever carries a final name, no torn artifact is read, every
step that finished before the kill is a cache hit on the re-run, temp files
of the killed writer are swept, and ``PRAGMA integrity_check`` stays ok.
"""

from __future__ import annotations

import json
import random
import signal

import pytest

from tests.reliability.helpers import start_mid_write, statuses, store_problems

SIZE = 200_000_000
KILLS = 6


@pytest.mark.slow
def test_kill_mid_artifact(orch, store, figure):
    rng = random.Random(5)
    faults = survived = lost = 0
    seed = 0
    while faults < KILLS and seed < KILLS * 3:
        seed += 1
        args = ("run", "big.py", "-p", f"n={SIZE}", "-p", f"seed={seed}")
        temp = store / "tmp"
        proc = start_mid_write(orch, args, temp, rng.uniform(0.0, 0.3))
        if proc is None:
            continue  # finished before the write could be caught: not a kill
        mid_write = any(temp.glob("*.tmp"))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not mid_write:
            continue
        faults += 1
        problems = store_problems(store, temp_allowed=True)  # the killed writer's temp file may remain
        killed = statuses(orch)
        again = orch(*args, "--json")
        ok = again.returncode == 0 and not problems
        if ok:
            rerun = {s["name"]: s for s in json.loads(again.stdout)["steps"]}
            finished = [name for name, status in killed.items() if status == "ran"]
            lost += sum(rerun[name]["status"] != "cached" for name in finished)
            ok = not store_problems(store) and rerun["size"]["status"] in ("ran", "cached")
        survived += ok
        assert ok, (problems, again.stderr[-2000:])
    figure(faults=faults, survived=survived, data_lost=lost)
    assert faults >= KILLS and survived == faults and lost == 0
