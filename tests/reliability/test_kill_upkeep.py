"""SIGKILL ``orch cache gc`` in the middle of its removals: no record may name an object it removed.

gc removed the object files first and their rows after the loop, so a gc killed
(or stopped by Ctrl-C) between the two left rows, and cache entries, naming
objects that were gone: ``orch cache verify`` then called them damaged and
exited 1 on a store nothing had damaged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.reliability.helpers import store_problems

# Runs ``orch ARGS`` and kills itself once gc has removed its first object file.
KILL_AFTER_FIRST_DELETE = """
import os, signal, sys
from orchestrator.cli import main
from orchestrator.store import ArtifactStore

real_delete = ArtifactStore.delete

def delete(self, digest):
    real_delete(self, digest)
    os.kill(os.getpid(), signal.SIGKILL)

ArtifactStore.delete = delete
main(sys.argv[1:])
"""


def test_gc_killed_between_two_removals_leaves_no_record_of_a_removed_object(orch, store, tmp_path):
    outputs = []
    for seed in (1, 2, 3):
        ran = orch("run", "big.py", "-p", "n=100000", "-p", f"seed={seed}", "--json")
        assert ran.returncode == 0, ran.stderr
        outputs.append({s["name"]: s for s in json.loads(ran.stdout)["steps"]}["big"])
    time.sleep(0.05)  # past gc's spare-what-is-being-written window
    script = tmp_path / "kill_gc.py"
    script.write_text(KILL_AFTER_FIRST_DELETE)
    killed = subprocess.run([sys.executable, str(script), "--store", str(store), "cache", "gc", "--keep-last", "1"],
                            cwd=orch.cwd, env=orch.env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr  # it did die mid-gc: two objects were to go

    verify = orch("cache", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert store_problems(store) == []
    gc = orch("cache", "gc", "--keep-last", "1")  # the object the killed gc had no time for: an orphan now
    assert gc.returncode == 0 and gc.stdout.startswith("removed 1 artifact "), gc.stdout + gc.stderr
    assert len(list((store / "objects").glob("*/*"))) == 1  # the last run's alone

    again = orch("run", "big.py", "-p", "n=100000", "-p", "seed=1", "--json")
    assert again.returncode == 0, again.stderr
    rerun = {s["name"]: s for s in json.loads(again.stdout)["steps"]}
    assert rerun["big"]["status"] == "ran" and rerun["big"]["outputs"] == outputs[0]["outputs"]
