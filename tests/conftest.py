"""Shared fixtures: a store in tmp_path, a call log, and the ``orch`` CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.forked_cli import ForkServer, forkable

# A suite started in the background by a shell without job control (`make test &` in a script) has
# SIGINT ignored, and so would every `orch` it starts: the Ctrl-C tests could not press Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

PIPELINES = Path(__file__).parent / "pipelines"
ROOT = Path(__file__).parent.parent


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def lines_executed(fn) -> int:
    """How many lines of the orchestrator package ``fn()`` executes, loop iterations included.

    A measure of work that is the same on any machine, for tests that assert a cost grows
    in proportion to its input (twice the input, about twice the lines) without timing it.
    """
    import orchestrator

    package = os.path.dirname(orchestrator.__file__) + os.sep
    count = 0

    def in_package(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return in_package

    def calls(frame, event, arg):
        return in_package if frame.f_code.co_filename.startswith(package) else None

    sys.settrace(calls)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


class CallLog:
    """Steps of tests/pipelines call ``recorder.record(name)``; this counts those calls."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def counts(self) -> Counter[str]:
        if not self.path.exists():
            return Counter()
        return Counter(self.path.read_text().split())

    def ran(self) -> set[str]:
        return set(self.counts())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CallLog:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("ORCH_TEST_LOG", str(log))
    return CallLog(log)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of tests/pipelines in tmp_path, free to edit."""
    dest = tmp_path / "project"
    shutil.copytree(PIPELINES, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def copy_store(source: Path, target: Path) -> Path:
    """A private copy of a store whose database other tests may hold open.

    The database goes through SQLite's backup: its -wal/-shm files come and go
    while a plain file copy runs, which can copy a torn database.
    """
    import sqlite3

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("metadata.db*"))
    reader, writer = sqlite3.connect(source / "metadata.db"), sqlite3.connect(target / "metadata.db")
    with reader, writer:
        reader.backup(writer)
    reader.close()
    writer.close()
    return target


# Forks a warm interpreter per `orch` command (see tests/forked_cli.py): started on first use.
_FORK_SERVER = ForkServer()


@pytest.fixture(scope="session", autouse=True)
def _stop_fork_server():
    yield
    _FORK_SERVER.stop()


def orch_process(args: list[str], cwd: Path, env: dict[str, str],
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator ARGS`` run as ``subprocess.run(..., capture_output=True, text=True)`` runs it.

    A fork of the warm server where that is the same as a fresh interpreter (``forked_cli.forkable``),
    else a fresh interpreter.
    """
    if not _FORK_SERVER.started:
        _FORK_SERVER.start(env)
    if forkable(args, env, _FORK_SERVER.env, _FORK_SERVER.set_by_imports):
        return _FORK_SERVER.run(args, env, str(cwd), timeout)
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


class Orch:
    """Runs ``python -m orchestrator --store STORE ...`` in its own process.

    That process is a fork of a server that has imported orchestrator and its libraries,
    or a fresh interpreter where a fork would differ from one (``forked_cli.forkable``).
    """

    def __init__(self, store: Path, cwd: Path, env: dict[str, str]) -> None:
        self.store, self.cwd, self.env = store, cwd, env

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return orch_process(["--store", str(self.store), *args], self.cwd, self.env, timeout)

    def fresh(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The command in a fresh interpreter, always."""
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", "--store", str(self.store), *args],
            cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout,
        )


@pytest.fixture
def orch(store: Path, project: Path, calls: CallLog) -> Orch:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ORCH_TEST_LOG": str(calls.path), "COLUMNS": "200"}
    return Orch(store, project, env)


def edit_file(project: Path, file: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in a file of the test project (which must contain it)."""
    path = project / file
    text = path.read_text()
    assert old in text, f"test edit not found in {file}: {old!r}"
    path.write_text(text.replace(old, new))


def _tree_digest(folder: Path) -> str:
    """A digest of every file under ``folder`` (names and bytes), to tell an edited project from the original."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# (target, digest of the project) -> a store holding one successful run of it, made by the first
# test of the session that needed it. Runs are keyed by content, not by the project's folder, so a
# copy of that store is what a first run of the same files in another folder would leave.
_FIRST_RUNS: dict[tuple[str, str], Path] = {}


def run_once_per_session(orch: Orch, target: str) -> None:
    """Give ``orch.store`` the result of ``orch run TARGET`` on the project as it is now.

    The first test asking for a (target, project contents) pair runs it; later ones get a
    private copy of that store, which saves a run of a fresh process per test.
    """
    key = (target, _tree_digest(orch.cwd))
    first = _FIRST_RUNS.get(key)
    if first is not None and not orch.store.exists():
        copy_store(first, orch.store)
        return
    result = orch("run", target)
    assert result.returncode == 0, result.stderr
    if first is None:
        _FIRST_RUNS[key] = copy_store(orch.store, orch.store.parent / "first-run-store")


def reran_after_edit(orch: Orch, calls: CallLog, project: Path, target: str,
                     file: str, old: str, new: str) -> set[str]:
    """Run ``target``, make one edit, run it again: what the second run recorded as running."""
    run_once_per_session(orch, target)
    calls.clear()
    edit_file(project, file, old, new)
    result = orch("run", target)
    assert result.returncode == 0, result.stderr
    return calls.ran()
