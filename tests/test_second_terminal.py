"""Commands run in a second terminal while a run on the same store is under way.

The run (``tests/pipelines/held.py``) stays in its middle step until the test releases
it, so each command looks at it at a known point rather than after a guessed delay.
"""

from __future__ import annotations

import json
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
