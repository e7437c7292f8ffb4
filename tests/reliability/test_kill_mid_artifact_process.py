"""Issue 5, item 1, on the process pool: SIGKILL the ``orch run`` driver while a worker writes ~150 MB.

The artifact is written by a pool worker, not by the driver that is killed.
The driver's workers must then die too (on Linux the kernel kills them with
it, mid-write: their temp file is swept later) or at least do no harm: an
orphaned worker may finish its write, which is atomic.
After each kill the run is repeated: no partial file carries a final name,
``orch cache verify`` is clean, every step the killed run finished is a cache
hit, and ``PRAGMA integrity_check`` stays ok.
"""

from __future__ import annotations

import json
import random
import signal
import sys
from pathlib import Path

import pytest

from tests.reliability.helpers import start_mid_write, statuses, store_problems, wait_for

SIZE = 150_000_000
KILLS = 4
PROCESS = ("--executor", "process", "--workers", "2")


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux: read from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its reaper is late


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
def test_kill_mid_artifact_on_process_pool(orch, store, figure):
    rng = random.Random(1)
    faults = survived = lost = 0
    seed = 0
    temp = store / "tmp"
    while faults < KILLS and seed < KILLS * 3:
        seed += 1
        args = ("run", "big.py", "-p", f"n={SIZE}", "-p", f"seed={seed}", *PROCESS)
        proc = start_mid_write(orch, args, temp, rng.uniform(0.0, 0.3))
        if proc is None:
            continue  # finished before the write could be caught: not a kill
        workers = _children(proc.pid)
        mid_write = any(temp.glob("*.tmp"))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # The workers die with the driver (or, elsewhere, notice the closed pipe and exit).
        gone = wait_for(lambda: not any(_alive(p) for p in workers), timeout=30, interval=0.05)
        if not mid_write:
            assert gone, [p for p in workers if _alive(p)]
            continue
        faults += 1
        problems = store_problems(store, temp_allowed=True)  # the killed writer's temp file may remain
        killed = statuses(orch)
        again = orch(*args, "--json")
        ok = gone and again.returncode == 0 and not problems
        if ok:
            rerun = {s["name"]: s for s in json.loads(again.stdout)["steps"]}
            finished = [name for name, status in killed.items() if status == "ran"]
            lost += sum(rerun[name]["status"] != "cached" for name in finished)
            verify = orch("cache", "verify")
            ok = (verify.returncode == 0 and not store_problems(store)
                  and rerun["size"]["status"] in ("ran", "cached"))
        survived += ok
        assert ok, (gone, problems, again.stderr[-2000:])
    figure(faults=faults, survived=survived, data_lost=lost)
    assert faults >= KILLS and survived == faults and lost == 0
