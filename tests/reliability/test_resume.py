"""Issue 5, item 9: a 10-step DAG killed after step 6 re-runs steps 7-10 only; after an edit of
step 3, only step 3 and what depends on it (step 10) re-run."""

from __future__ import annotations

from tests.reliability.helpers import store_problems


def test_resume(orch, calls, project, store, figure):
    env = {**orch.env, "ORCH_TEST_KILL_AT": "s7"}
    import subprocess
    import sys

    killed = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), "run", "chain10.py"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert calls.ran() == {f"s{i}" for i in range(1, 7)}
    calls.clear()
    resumed = orch("run", "chain10.py")
    faults, survived, lost = 2, 0, 0
    ran = calls.ran()
    survived += resumed.returncode == 0 and ran == {"s7", "s8", "s9", "s10"}
    lost += len(ran & {f"s{i}" for i in range(1, 7)})  # finished work done again
    calls.clear()
    path = project / "chain10.py"
    path.write_text(path.read_text().replace(
        'def s3(x: int) -> int:\n    return _work("s3", x)', 'def s3(x: int) -> int:\n    return _work("s3", x) * 2'))
    edited = orch("run", "chain10.py")
    ran = calls.ran()
    survived += edited.returncode == 0 and ran == {"s3", "s10"}
    lost += len(ran - {"s3", "s10"})
    figure(faults=faults, survived=survived, data_lost=lost)
    assert survived == faults and lost == 0, (ran, resumed.stderr, edited.stderr)
    assert not store_problems(store)
