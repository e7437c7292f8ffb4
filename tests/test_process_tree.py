"""kill_tree: a process goes with everything it started, and never stays stopped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.executors import process_tree


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a process tree is found from /proc")
def test_a_kill_interrupted_while_it_stops_the_tree_still_kills_what_it_stopped(monkeypatch):
    """A second Ctrl-C raised as kill_tree walked the tree it had stopped (SIGSTOP) left the pool's
    worker stopped for good, and `orch` hung at its exit waiting for it."""
    sleeper = subprocess.Popen(["sleep", "30"])

    def interrupted(pid):
        raise KeyboardInterrupt

    monkeypatch.setattr(process_tree, "descendants", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            process_tree.kill_tree(sleeper.pid)
        assert sleeper.wait(timeout=5) == -9  # killed, not left stopped
    finally:
        sleeper.kill()
        sleeper.wait()
