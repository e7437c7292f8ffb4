"""The ``orch`` fixture's forked commands (tests/forked_cli.py) give what a fresh interpreter gives.

Every CLI test relies on this: stdout, stderr and exit code as ``python -m orchestrator`` would
give them, in the test's working folder and with the test's environment.
"""

from __future__ import annotations

from tests.conftest import _FORK_SERVER, Orch
from tests.forked_cli import env_differences, forkable


def _both(orch: Orch, *args: str, own_store: bool = False):
    """The command forked, then in a fresh interpreter (on a store of its own for a run, else cached)."""
    fresh_store = orch.store.with_name(orch.store.name + "-fresh") if own_store else orch.store
    forked, fresh = orch(*args), Orch(fresh_store, orch.cwd, orch.env).fresh(*args)
    assert forkable(["--store", str(orch.store), *args], orch.env, _FORK_SERVER.env, _FORK_SERVER.set_by_imports), (
        "the test did not fork: its environment differs from the fork server's in "
        f"{env_differences(orch.env, _FORK_SERVER.env, _FORK_SERVER.set_by_imports)} (an earlier test left them?)")
    return forked, fresh


def _same(forked, fresh) -> None:
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_help_and_a_usage_error_are_the_same(orch):
    _same(*_both(orch, "--help"))
    _same(*_both(orch, "run", "--no-such-option"))


def test_a_target_is_found_from_the_working_folder(orch):
    forked, fresh = _both(orch, "dag", "edits.py")
    assert forked.returncode == 0, forked.stderr
    _same(forked, fresh)
    _same(*_both(orch, "dag", "no_such_file.py"))


def test_the_commands_environment_reaches_the_child(orch):
    bad_fault = Orch(orch.store, orch.cwd, {**orch.env, "ORCH_FAULT": "nonsense:1"})
    forked, fresh = _both(bad_fault, "runs")
    assert "ORCH_FAULT='nonsense:1' is not" in forked.stderr  # read at import: the child reads it again
    _same(forked, fresh)
    assert "ORCH_FAULT" not in orch("runs").stderr  # and the next command has its own environment


_STORED = """from orchestrator import pipeline, step


@step
def big() -> bytes:
    return b"x" * 100_000


@pipeline
def stored():
    big()
"""


def test_a_fault_injected_by_the_environment_fails_the_run_alike(orch, project):
    (project / "stored.py").write_text(_STORED)
    faulty = Orch(orch.store, orch.cwd, {**orch.env, "ORCH_FAULT": "fsync:1"})
    forked, fresh = _both(faulty, "run", "stored.py", own_store=True)
    assert forked.returncode == fresh.returncode == 1
    assert "Input/output error" in forked.stderr and "Input/output error" in fresh.stderr


def test_the_exit_status_of_a_process_ended_by_os_exit(orch, project):
    (project / "stored.py").write_text(_STORED)
    ended = Orch(orch.store, orch.cwd, {**orch.env, "ORCH_FAULT": "after-object"})
    forked, fresh = _both(ended, "run", "stored.py", own_store=True)
    assert forked.returncode == fresh.returncode == 137


def test_what_a_fork_cannot_reproduce_runs_in_a_fresh_interpreter(orch):
    orch("--help")  # starts the server
    server, imported = _FORK_SERVER.env, _FORK_SERVER.set_by_imports
    assert forkable(["runs"], {**orch.env, "ORCH_STORE": "elsewhere", "COLUMNS": "80", "XDG_CONFIG_HOME": "/c"},
                    server, imported)
    assert not forkable(["runs"], {**orch.env, "TZ": "Asia/Tokyo"}, server, imported)
    assert not forkable(["runs"], {**orch.env, "OMP_NUM_THREADS": "3"}, server, imported)
    assert not forkable(["run", "x.py", "--executor", "process"], orch.env, server, imported)
    assert not forkable(["run", "x.py", "--executor=dask"], orch.env, server, imported)


def test_what_the_warm_imports_set_does_not_stop_forking_once_the_tests_import_it_too(orch):
    """scikit-learn sets KMP_* variables in os.environ on import: a test process that imported it
    after the server started (or before) still forks; every later command ran in a fresh interpreter."""
    orch("--help")  # starts the server, whichever of the two the test process is in now
    server, imported = _FORK_SERVER.env, _FORK_SERVER.set_by_imports
    sklearn_sets = {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}
    without = {name: value for name, value in orch.env.items() if name not in sklearn_sets}
    assert forkable(["runs"], {**without, **sklearn_sets}, server, imported)
    assert not forkable(["runs"], {**without, "KMP_INIT_AT_FORK": "TRUE"}, server, imported)
    # A server started before the test process imported scikit-learn, asked once it has.
    assert forkable(["runs"], {**without, **sklearn_sets}, without, sklearn_sets)
