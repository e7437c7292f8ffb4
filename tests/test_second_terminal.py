"""Commands run in a second terminal while a run on the same store is under way.

The run (``tests/pipelines/held.py``) stays in its middle step until the test releases
it, so each command looks at it at a known point rather than after a guessed delay.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.helpers import start, wait_for


@pytest.fixture
def held_run(orch, tmp_path: Path):
    """``orch run held.py`` in another process, stopped inside its step ``held``; yields (process, release file)."""
    release = tmp_path / "release"
    proc = start(orch, "run", "held.py", env={**orch.env, "HELD_RELEASE": str(release)})

    def in_held() -> bool:
        shown = orch("show", "latest", "--json")
        return shown.returncode == 0 and any(
            s["name"] == "held" and s["status"] == "running" for s in json.loads(shown.stdout)["steps"])

    try:
        assert wait_for(lambda: proc.poll() is not None or in_held(), timeout=60, interval=0.05)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc, release
    finally:
        release.touch()
        proc.wait(timeout=60)


def test_a_step_the_running_run_has_not_reached_is_not_called_missing(orch, held_run):
    """`orch lineage latest:last` during the run said `run … has no step 'last'`, as for a step the
    pipeline does not have, though the run simply had not got there yet."""
    proc, release = held_run
    for command in (("lineage", "latest:last"), ("logs", "latest:last")):
        early = orch(*command)
        assert early.returncode == 2 and len(early.stderr.strip().splitlines()) == 1, early.stderr
        assert "is still running and has no record of step 'last' yet" in early.stderr
        assert "has no step 'last'" not in early.stderr
    release.touch()
    assert proc.wait(timeout=60) == 0
    after = orch("lineage", "latest:last")
    assert after.returncode == 0 and "last (run " in after.stdout, after.stderr


def test_show_of_a_running_run_says_how_long_it_has_run(orch, held_run):
    """`orch show latest` polled during a run printed `started …  took   by …`: an empty duration."""
    shown = orch("show", "latest")
    header = shown.stdout.splitlines()[1]
    assert shown.returncode == 0 and "running for " in header and "took" not in header, shown.stdout
    proc, release = held_run
    release.touch()
    assert proc.wait(timeout=60) == 0
    assert "  took " in orch("show", "latest").stdout.splitlines()[1]


def test_a_run_waiting_for_the_items_of_a_map_another_run_computes_says_so_once(orch, project, store, tmp_path):
    """Two terminals ran the same 400-item map: the second printed `… square_N: another run is computing
    it; waiting for its result` once per item, hundreds of lines burying its progress."""
    from orchestrator.locks import try_lock

    plan = orch("plan", "held_map.py", "--json")
    assert plan.returncode == 0, plan.stderr
    keys = [s["key"] for s in json.loads(plan.stdout)["steps"] if s["name"].startswith("square")]
    assert len(keys) == 5
    store.mkdir(parents=True, exist_ok=True)
    held = [try_lock(store, key) for key in keys]  # as the run in the other terminal holds them
    assert all(held)
    err = tmp_path / "run.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(store), "run", "held_map.py"],
                                cwd=orch.cwd, env=orch.env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            waiting = lambda: err.read_text().count("another run is computing")  # noqa: E731
            assert wait_for(lambda: proc.poll() is not None or waiting() >= 1, timeout=60)
            wait_for(lambda: waiting() >= 2, timeout=2)  # gives a line per item the time to show, if it comes
        finally:
            for lock in held:
                lock.release()
        assert proc.wait(timeout=60) == 0, err.read_text()
    lines = [line for line in err.read_text().splitlines() if "another run is computing" in line]
    assert len(lines) == 1, err.read_text()
    assert lines[0].endswith("waiting for its result (said once for all items of square)")
