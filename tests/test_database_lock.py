"""Another process holding the metadata database's write lock: a command says what it waits for, then gives up.

A ``sqlite3`` shell with ``BEGIN IMMEDIATE`` open is played here by a second
connection of this process; the waits are shortened so that the tests stay fast.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from orchestrator import capture, lineage_schema

PIPELINE = """
from orchestrator import pipeline, step


@step
def one(n: int) -> int:
    return n


@pipeline
def {name}(n: int = 1):
    return one(n)
"""

WAITING = "… waiting for the metadata database "


@pytest.fixture
def short_waits(monkeypatch):
    """Say the wait after 0.1 s and give up after 0.8 s (1.5 s and 60 s in real life)."""
    monkeypatch.setattr(lineage_schema, "LOCK_NOTICE_MS", 100)
    monkeypatch.setattr(lineage_schema, "BUSY_TIMEOUT_MS", 800)
    monkeypatch.setattr(lineage_schema, "_announced", set())


def _orch(capsys, *args: str) -> tuple[int, str]:
    """``orch ARGS`` in this process: (exit code, stderr)."""
    from orchestrator.cli import main

    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as exited:
        return int(exited.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def _hold(database: Path) -> sqlite3.Connection:
    """Take the database's write lock, as ``sqlite3 metadata.db`` then ``BEGIN IMMEDIATE;`` does."""
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _project(tmp_path: Path, capsys, name: str) -> tuple[Path, str]:
    (tmp_path / f"{name}.py").write_text(PIPELINE.format(name=name))
    store = tmp_path / "store"
    assert _orch(capsys, "--store", str(store), "run", str(tmp_path / f"{name}.py"))[0] == 0
    return store, str(tmp_path / f"{name}.py")


def test_a_run_that_waits_for_the_lock_says_so_once_and_then_runs(tmp_path, capsys, short_waits):
    store, file = _project(tmp_path, capsys, "waits")
    holder = _hold(store / "metadata.db")
    threading.Timer(0.5, holder.execute, ("COMMIT",)).start()
    code, err = _orch(capsys, "--store", str(store), "run", file, "-p", "n=2")
    holder.close()
    assert code == 0, err
    assert err.count(WAITING) == 1
    assert f"{WAITING}{store / 'metadata.db'}: another process holds its write lock" in err


@pytest.mark.parametrize("command", [["run", "-p", "n=3"], ["cache", "gc", "--keep-last", "0"]])
def test_a_command_that_writes_gives_up_on_a_held_lock_with_one_line(tmp_path, capsys, short_waits, command):
    store, file = _project(tmp_path, capsys, "held")
    args = [command[0], file, *command[1:]] if command[0] == "run" else command
    holder = _hold(store / "metadata.db")
    try:
        code, err = _orch(capsys, "--store", str(store), *args)
    finally:
        holder.close()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and [line for line in lines if line.startswith(WAITING)] == [lines[0]]
    assert lines[-1] == (f"error: the metadata database {store / 'metadata.db'} is locked by another process, "
                         "which held its write lock for 0.8 s (a sqlite3 shell or another tool with a transaction "
                         "open?). End that transaction or close that program, then run the same command again: "
                         "what finished is kept.")


def test_a_lock_taken_while_a_run_goes_on_stops_it_with_one_line(tmp_path, capsys, short_waits):
    """The lock may be taken mid-run (here by a step): the run's next commit gives up, without a thread traceback."""
    store = tmp_path / "store"
    (tmp_path / "midway.py").write_text(
        "import sqlite3, time\nfrom orchestrator import pipeline, step\nHELD = []\n\n"
        "@step\ndef grab(path: str) -> int:\n"
        "    HELD.append(sqlite3.connect(path, isolation_level=None, check_same_thread=False))\n"
        "    HELD[0].execute('BEGIN IMMEDIATE')\n    time.sleep(0.5)\n    return 1\n\n"
        "@step\ndef after(x: int) -> int:\n    return x\n\n"
        "@pipeline\ndef midway(path: str = ''):\n    return after(grab(path))\n")
    store.mkdir()
    code, err = _orch(capsys, "--store", str(store), "run", str(tmp_path / "midway.py"),
                      "-p", f"path={store / 'metadata.db'}")
    sys.modules["midway"].HELD[0].close()
    assert code == 2, err
    assert "Traceback" not in err and "Exception in thread" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: the metadata database {store / 'metadata.db'} is locked")
    # Said to the user while the step ran, not into the step's captured output.
    assert err.count(WAITING) == 1
    assert capture.driver_stderr() is sys.stderr


def test_the_wait_is_said_outside_a_step_capturing_the_output(capsys):
    with capture.Capture(echo=False) as captured:
        lineage_schema._say("said to the user")
        print("the step's own", file=sys.stderr)
    assert captured.stderr == "the step's own\n"
    assert capsys.readouterr().err == "said to the user\n"


def test_from_python_a_held_lock_is_one_error_naming_the_database(tmp_path, short_waits):
    from orchestrator import pipeline, step
    from orchestrator.errors import DatabaseLockedError

    @step
    def one(n: int) -> int:
        return n

    @pipeline
    def locked(n: int = 1):
        return one(n)

    store = tmp_path / "store"
    locked.run(store=str(store))
    holder = _hold(store / "metadata.db")
    try:
        with pytest.raises(DatabaseLockedError, match="is locked by another process"):
            locked.run(store=str(store), n=2)
    finally:
        holder.close()
