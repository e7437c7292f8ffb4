"""SIGKILL a run at random moments, on the sequential and the process executor; every promise holds.

Each kill falls anywhere in a run (start-up, a step, an object's write, a commit,
the final one) of a pipeline mixing inline values, objects of a few MB, a map, a
step retried after a failure and a ``cache=False`` step. After each: the killed
run is shown ``interrupted`` (or ``succeeded``, when it got that far), never
``running``; ``orch cache verify`` and ``PRAGMA integrity_check`` pass; no temp
file counts as an object; and a full run succeeds, cached exactly where the
killed run's records were committed, with the outputs of a run never killed.
The fuzz campaign behind it ran the same checks over hundreds of kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import store_problems

KILLS = 6
UNCACHED = "rounded"  # the pipeline's cache=False step: it runs every time


def _args(store: Path, executor: str, seed: int) -> list[str]:
    args = [sys.executable, "-m", "orchestrator", "--store", str(store), "run", "kill_mix.py", "-p", f"seed={seed}"]
    return args + (["--executor", "process", "--workers", "2"] if executor == "process" else [])


def _full_run(orch, store: Path, executor: str, seed: int) -> dict[str, dict]:
    Path(orch.env["ORCH_TEST_LOG"] + ".flaky").unlink(missing_ok=True)  # the flaky step fails once again
    done = subprocess.run([*_args(store, executor, seed), "--json"], cwd=orch.cwd, env=orch.env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return {s["name"]: s for s in json.loads(done.stdout)["steps"]}


def _outputs(steps: dict[str, dict]) -> dict[str, list]:
    return {name: s["outputs"] for name, s in steps.items()}


def _inspect(store: Path, *args: str):
    """``orch --store STORE ARGS`` in this process: what the killed run left is read from disk either way,
    and a fresh interpreter per look would cost more than the kills."""
    from click.testing import CliRunner

    from orchestrator.cli import cli

    return CliRunner().invoke(cli, ["--store", str(store), *args])


def _json(store: Path, *args: str):
    shown = _inspect(store, *args, "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


@pytest.mark.slow
def test_random_kills_lose_only_running_steps_and_resume_to_the_same_outputs(orch, store, tmp_path, figure):
    rng = random.Random(20261128)
    reference: dict[int, dict[str, list]] = {}
    duration = {}
    for executor in ("sequential", "process"):  # an uninterrupted run, timed from start-up to exit
        for seed in (0, 1):
            started = time.monotonic()
            outputs = _outputs(_full_run(orch, tmp_path / f"reference-{executor}", executor, seed))
            duration.setdefault(executor, time.monotonic() - started)
            assert reference.setdefault(seed, outputs) == outputs  # the executors agree
    kills = resumed = 0
    for i in range(KILLS):
        executor, seed = ("sequential", "process")[i % 2], rng.randrange(2)
        before = {r["run_id"] for r in _json(store, "runs")} if store.exists() else set()
        Path(orch.env["ORCH_TEST_LOG"] + ".flaky").unlink(missing_ok=True)
        proc = subprocess.Popen(_args(store, executor, seed), cwd=orch.cwd, env=orch.env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, duration[executor]))
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool's workers alike
        proc.wait()
        kills += 1
        if not (store / "metadata.db").exists():
            continue  # killed before the store was made: nothing to check

        runs = _json(store, "runs")
        assert not [r for r in runs if r["status"] == "running"], runs
        new = [r["run_id"] for r in runs if r["run_id"] not in before]
        killed = _json(store, "show", new[0]) if new else None
        verify = _inspect(store, "cache", "verify")
        assert verify.exit_code == 0, verify.output
        assert store_problems(store, temp_allowed=True) == []  # integrity_check, objects, cache entries
        on_disk = {p.name for p in store.glob("objects/*/*") if p.is_file()}
        listed = {a["hash"] for a in _json(store, "cache", "ls") if a["path"] is not None}
        assert listed <= on_disk and _json(store, "cache", "du")["objects"] == len(on_disk)
        with sqlite3.connect(store / "metadata.db") as db:
            committed = {key for (key,) in db.execute("SELECT key FROM cache")}
        if killed is not None:
            assert killed["status"] in ("interrupted", "succeeded"), killed
            finished = {s["key"] for s in killed["steps"] if s["status"] == "ran" and s["name"] != UNCACHED}
            assert finished <= committed  # a step shown as ran has its result's record

        steps = _full_run(orch, store, executor, seed)
        cached = {name for name, s in steps.items() if s["status"] == "cached"}
        assert cached == {name for name, s in steps.items() if s["key"] in committed and name != UNCACHED}
        assert _outputs(steps) == reference[seed]
        resumed += 1
    figure(kills=kills, resumed=resumed)
