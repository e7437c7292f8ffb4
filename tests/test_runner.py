"""Running pipelines through the Python API: statuses, retries, failures, resume, outputs."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import inspect
import json
import os
import signal
from pathlib import Path

import pytest

from orchestrator import pipeline, step
from orchestrator.context import Context
from orchestrator.errors import PipelineDefinitionError, UserError
from orchestrator.loader import load_pipeline

from .conftest import PIPELINES, ROOT


def _load(target: str):
    return load_pipeline(str(PIPELINES / target))


def test_retries_until_success_records_every_attempt(store, calls):
    run = _load("flaky.py:flaky_pipeline").run(store=str(store), fail_times=2)
    assert run.status == "succeeded", run.error
    assert run.steps["flaky"].attempts == 3
    assert calls.counts()["flaky"] == 3
    assert run.output() == "ok"
    from orchestrator.lineage_db import Lineage

    attempts = Lineage(store / "metadata.db").attempts(run.id, "flaky")
    assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert "ConnectionError: temporary network problem" in attempts[0]["error"]


def test_retries_exhausted_fail_the_step(store, calls):
    run = _load("flaky.py:flaky_pipeline").run(store=str(store), fail_times=10)
    assert run.status == "failed"
    assert run.steps["flaky"].status == "failed"
    assert run.steps["flaky"].attempts == 4  # retries=3 allows 4 attempts
    assert "failed after 4 attempts: ConnectionError" in run.error


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_due_retry_runs_before_the_steps_not_started_yet(store, calls, executor):
    # Else it waits behind every other item of the map: its failure shows only at the end, and
    # its time counts that wait.
    run = _load("flaky_map.py").run(store=str(store), executor=executor, workers=None if executor == "sequential" else 1)
    assert run.status == "succeeded", run.error
    assert run.steps["item_fails_once"].attempts == 2
    order = calls.path.read_text().split()
    assert order[:2] == ["item:0", "item:0"], order


def test_retry_on_filters_exception_kinds(store, calls):
    run = _load("flaky.py:filtered").run(store=str(store))
    assert run.status == "failed"
    assert run.steps["wrong_kind"].attempts == 1
    assert calls.counts()["wrong_kind"] == 1


@pytest.mark.slow
def test_timeout_stops_the_step_and_counts_as_failed_attempt(store, calls):
    import time

    started = time.time()
    run = _load("flaky.py:timeouts").run(store=str(store), seconds=30.0)
    assert time.time() - started < 15
    assert run.status == "failed"
    assert run.steps["hangs"].attempts == 2
    assert "timeout" in run.steps["hangs"].error
    # What the attempt printed and logged before it was killed is kept: that is what explains a hang.
    attempts = Context.open(store).lineage.attempts(run.id, "hangs")
    assert all("waiting for the slow service" in a["stdout"] and "still waiting" in a["logs"] for a in attempts)


def test_timeout_step_that_finishes_in_time_succeeds(store, calls):
    run = _load("flaky.py:timeouts").run(store=str(store), seconds=0.01)
    assert run.status == "succeeded", run.error
    assert run.output() == "done"


def test_failure_skips_downstream_and_independent_branch_finishes(store, calls, monkeypatch):
    monkeypatch.delenv("ORCH_TEST_FIX", raising=False)
    run = _load("branches.py").run(store=str(store))
    assert run.status == "failed"
    statuses = {n: s.status for n, s in run.steps.items()}
    assert statuses == {"source": "ran", "good": "ran", "good_after": "ran", "bad": "failed",
                        "after_bad": "skipped"}
    assert "ValueError: bad input" in run.error
    assert f"orch show {run.id}" in run.error


def test_a_failed_run_from_python_says_so_once_on_the_orchestrator_logger(store, calls, monkeypatch, caplog):
    """`run = p.run()` in a notebook showed nothing when the run failed; a WARNING record now says so
    (Python prints it on stderr when logging is not configured). Not when progress shows it already."""
    import logging

    monkeypatch.delenv("ORCH_TEST_FIX", raising=False)
    branches = _load("branches.py")
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        run = branches.run(store=str(store))
    said = [r for r in caplog.records if r.name == "orchestrator"]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert said[0].getMessage() == (f"pipeline 'branches' failed: {run.error}. "
                                    "Each step's traceback: run.steps[name].traceback.")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        branches.run(store=str(store), progress=True)
        monkeypatch.setenv("ORCH_TEST_FIX", "1")
        assert branches.run(store=str(store)).status == "succeeded"
    assert [r for r in caplog.records if r.name == "orchestrator"] == []


def test_resume_after_failure_reruns_only_what_failed(store, calls, monkeypatch):
    monkeypatch.delenv("ORCH_TEST_FIX", raising=False)
    assert _load("branches.py").run(store=str(store)).status == "failed"
    calls.clear()
    monkeypatch.setenv("ORCH_TEST_FIX", "1")
    run = _load("branches.py").run(store=str(store))
    assert run.status == "succeeded", run.error
    assert calls.ran() == {"bad", "after_bad"}
    assert run.steps["good"].status == "cached"


def test_file_input_is_hashed_by_content(tmp_path, store, calls):
    files = _load("files.py")
    data = tmp_path / "input.txt"
    data.write_text("hello")
    run = files.run(store=str(store), path=data)
    assert run.output() == ("HELLO", "5 chars")
    calls.clear()
    # Same content under another name: another file (a step may use its name), so `read` runs; what
    # follows it stays cached (early cutoff: the same text).
    other = tmp_path / "copy.txt"
    other.write_text("hello")
    run = files.run(store=str(store), path=other)
    assert run.steps["read"].reason == f"parameter `path` changed (now {other})"
    assert calls.ran() == {"read"}
    calls.clear()
    # New content: read runs; a same-length change keeps `report` cached (early cutoff).
    data.write_text("world")
    os.utime(data, ns=(1, 1))
    run = files.run(store=str(store), path=data)
    assert calls.ran() == {"read", "shout", "length"}
    assert run.steps["read"].reason == f"content of file `path` changed ({data})"
    assert run.steps["report"].status == "cached"
    calls.clear()
    files.run(store=str(store), path=data, unit="letters")
    assert calls.ran() == {"report"}


def test_an_edited_copy_is_explained_against_the_copy_the_last_run_read(tmp_path, store, calls):
    """Run on a.txt, then on b.txt (a copy), then b.txt edited: the reason said the parameter
    changed (now b.txt), compared with the run on a.txt rather than the one on b.txt."""
    files = _load("files.py")
    original, copy = tmp_path / "a.txt", tmp_path / "b.txt"
    original.write_text("hello")
    copy.write_text("hello")
    files.run(store=str(store), path=original)
    assert files.run(store=str(store), path=copy).steps["read"].reason == f"parameter `path` changed (now {copy})"
    copy.write_text("howdy")
    expected = f"content of file `path` changed ({copy})"
    assert files.plan(store=str(store), path=copy).steps["read"].reason == expected
    assert files.run(store=str(store), path=copy).steps["read"].reason == expected


def test_a_miss_says_what_happened_to_the_input_file(tmp_path, store, calls):
    files = _load("files.py")
    data = tmp_path / "input.txt"
    data.write_text("hello")
    assert files.run(store=str(store), path=data).status == "succeeded"
    data.unlink()
    assert files.run(store=str(store), path=data).steps["read"].reason == f"file `path` is gone ({data})"
    data.write_text("hello")
    assert files.run(store=str(store), path=data).steps["read"].status == "cached"
    moved = tmp_path / "elsewhere.txt"
    run = files.run(store=str(store), path=moved)
    assert run.steps["read"].reason == f"parameter `path` changed (now {moved})"
    moved.write_text("new text")  # compared with the last result, made from input.txt
    assert files.run(store=str(store), path=moved).steps["read"].reason == f"parameter `path` changed (now {moved})"


def test_a_relative_path_read_in_another_folder_is_the_same_parameter(tmp_path, store, monkeypatch):
    """The project moved (or run from its subfolder): `input.txt` names another file, the parameter is the same.

    The reason said "parameter `path` changed (now /new/input.txt)" of a parameter nobody changed.
    """
    files = _load("files.py")
    first, moved = tmp_path / "proj", tmp_path / "proj-moved"
    first.mkdir()
    (first / "input.txt").write_text("hello")
    monkeypatch.chdir(first)
    assert files.run(store=str(store)).status == "succeeded"
    first.rename(moved)
    monkeypatch.chdir(moved)
    assert files.plan(store=str(store)).entries[0].status == "cached"  # keys hold no absolute paths
    (moved / "input.txt").write_text("world")
    [read] = [e for e in files.plan(store=str(store)).entries if e.node == "read"]
    assert read.reason == f"content of file `path` changed ({moved / 'input.txt'})"
    assert files.run(store=str(store)).steps["read"].reason == read.reason
    (moved / "sub").mkdir()
    monkeypatch.chdir(moved / "sub")
    [read] = [e for e in files.plan(store=str(store)).entries if e.node == "read"]
    assert read.reason == f"file `path` does not exist ({moved / 'sub' / 'input.txt'})"
    # Named from here (`../input.txt`), the same file is another parameter: a step may use the text it is given.
    [read] = [e for e in files.plan(store=str(store), path=Path("../input.txt")).entries if e.node == "read"]
    assert (read.status, read.reason) == ("will run", 'parameter `path` changed ("input.txt" → "../input.txt")')


def test_copies_of_one_file_in_a_map_each_give_their_own_result(tmp_path, store, calls, monkeypatch):
    """b.csv, a copy of a.csv: `summarize_2` was cached from `summarize`, and the run said b.csv was
    `{'file': 'a.csv'}`. A key holds the path a step is given, besides the file's content."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv").write_text("x\n1\n")
    named = _load("named_files.py:named")
    run = named.run(store=str(store))
    assert run.output() == [{"file": "a.csv", "rows": 1}, {"file": "b.csv", "rows": 1}]
    assert calls.counts()["summarize"] == 2
    assert run.steps["summarize"].key != run.steps["summarize_2"].key
    calls.clear()
    again = named.run(store=str(store))
    assert {s.status for s in again.steps.values()} == {"cached"} and calls.ran() == set()


def test_a_path_parameter_naming_a_copy_runs_the_step_on_the_copy(tmp_path, store, calls, monkeypatch):
    """Given b.csv after a run on a.csv of the same bytes, the step stayed cached on a.csv's result."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv").write_text("x\n1\n")
    one = _load("named_files.py:one")
    assert one.run(store=str(store)).output() == {"file": "a.csv", "rows": 1}
    assert one.plan(store=str(store), path=Path("b.csv")).steps["summarize"].reason == \
        f"parameter `path` changed (now {tmp_path / 'b.csv'})"
    run = one.run(store=str(store), path=Path("b.csv"))
    assert run.output() == {"file": "b.csv", "rows": 1}
    assert run.steps["summarize"].reason == f"parameter `path` changed (now {tmp_path / 'b.csv'})"
    assert calls.counts()["summarize"] == 2
    assert one.run(store=str(store), path=Path("a.csv")).steps["summarize"].status == "cached"


def test_a_map_over_listed_partitions_of_equal_content_keeps_each_day(tmp_path, store, calls, monkeypatch):
    """Two empty partitions (`date=.../part-0.csv`, header only) listed by a step: the second day reused the
    first day's result, and reported its date."""
    monkeypatch.chdir(tmp_path)
    for day in ("2024-01-01", "2024-01-02"):
        (tmp_path / "data" / f"date={day}").mkdir(parents=True)
        (tmp_path / "data" / f"date={day}" / "part-0.csv").write_text("x\n")
    days = _load("named_files.py:days")
    run = days.run(store=str(store))
    assert run.output() == [{"day": "2024-01-01", "rows": 0}, {"day": "2024-01-02", "rows": 0}]
    assert calls.counts()["count_day"] == 2
    calls.clear()
    assert days.run(store=str(store)).status == "succeeded" and calls.ran() == set()
    # A day copied to a new date: that item runs, the others stay cached.
    (tmp_path / "data" / "date=2024-01-03").mkdir()
    (tmp_path / "data" / "date=2024-01-03" / "part-0.csv").write_text("x\n")
    assert days.run(store=str(store)).output()[-1] == {"day": "2024-01-03", "rows": 0}
    assert calls.counts()["count_day"] == 1


def test_paths_a_map_returns_of_equal_content_each_give_their_own_result(tmp_path, store, calls, monkeypatch):
    """A map over the paths a map wrote (a.csv, b.csv, the same bytes): each item is keyed by the path it takes."""
    monkeypatch.chdir(tmp_path)
    written = _load("named_files.py:written")
    assert written.run(store=str(store)).output() == [{"file": "a.csv", "rows": 1}, {"file": "b.csv", "rows": 1}]
    assert calls.counts()["summarize"] == 2


def test_an_absolute_path_inside_the_working_folder_keys_as_the_relative_one(tmp_path, store, calls, monkeypatch):
    """`Path(__file__).parent / "a.csv"` run from the project's root: the key holds `a.csv`, not the absolute
    path, so the same project checked out elsewhere (or given `-p path=a.csv`) shares its keys."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "a.csv").write_text("x\n1\n")
    monkeypatch.chdir(project)
    one = _load("named_files.py:one")
    first = one.run(store=str(store), path=project / "a.csv")
    assert one.run(store=str(store), path=Path("a.csv")).steps["summarize"].key == first.steps["summarize"].key
    moved = tmp_path / "checkout"
    project.rename(moved)
    monkeypatch.chdir(moved)
    again = one.run(store=str(store), path=moved / "a.csv")
    assert (again.steps["summarize"].status, again.steps["summarize"].key) == ("cached", first.steps["summarize"].key)
    assert calls.counts()["summarize"] == 1


@dataclasses.dataclass(frozen=True)
class _Paths:
    train: Path
    lookups: list[Path]
    seed: int = 0


@dataclasses.dataclass
class _Config:
    paths: _Paths
    alpha: float = 1.0


def test_paths_in_a_dataclass_config_are_file_inputs(tmp_path, store):
    """Editing a file a config object names re-runs the step that reads it, and the reason names it."""
    @step
    def read(cfg: _Config) -> str:
        return cfg.paths.train.read_text() + "".join(p.read_text() for p in cfg.paths.lookups)

    @step
    def plain(cfg: _Config) -> float:
        return cfg.alpha

    train, lookup = tmp_path / "train.csv", tmp_path / "lookup.csv"
    train.write_text("a\n1\n")
    lookup.write_text("k\nv\n")
    config = _Config(_Paths(train, [lookup]))

    @pipeline
    def configured(cfg: _Config = config):
        return read(cfg), plain(_Config(_Paths(Path("nothing"), []), 0.5))

    assert configured.run(store=str(store)).status == "succeeded"
    assert {s.status for s in configured.run(store=str(store)).steps.values()} == {"cached"}
    lookup.write_text("k\nw\n")
    run = configured.run(store=str(store))
    assert (run.steps["read"].reason, run.steps["plain"].status) == \
        (f"content of file `cfg` changed ({lookup})", "cached")
    assert run.output()[0] == "a\n1\nk\nw\n"
    train.write_text("a\n2\n")
    assert configured.run(store=str(store)).steps["read"].reason == f"content of file `cfg` changed ({train})"


def test_a_config_holding_an_absolute_path_inside_the_folder_keys_as_the_relative_one(tmp_path, store, monkeypatch):
    """A config's path fields count by their text as well as their files: the text of one inside the working
    folder is relative to it, so that a checkout elsewhere shares the keys. Another file is another key."""
    @step
    def read(cfg: _Config) -> str:
        return cfg.paths.train.read_text() + "".join(p.read_text() for p in cfg.paths.lookups)

    @pipeline
    def configured(cfg: _Config):
        return read(cfg)

    monkeypatch.chdir(tmp_path)
    for name in ("train.csv", "lookup.csv", "copy.csv"):
        (tmp_path / name).write_text("a\n1\n")
    relative = _Config(_Paths(Path("train.csv"), [Path("lookup.csv")]))
    assert configured.run(store=str(store), cfg=relative).status == "succeeded"
    absolute = _Config(_Paths(tmp_path / "train.csv", [tmp_path / "lookup.csv"]))
    assert configured.plan(store=str(store), cfg=absolute).steps["read"].status == "cached"
    copied = _Config(_Paths(Path("copy.csv"), [Path("lookup.csv")]))
    assert configured.plan(store=str(store), cfg=copied).steps["read"].status == "will run"

def test_a_config_holding_a_path_whose_other_field_changed_says_that_field(tmp_path, store):
    """Its file as it was: the reason said "content of file `cfg` changed (/abs/train.csv)" of a file
    nobody touched when `alpha` changed. It names the field, and the file too when both changed."""
    @step
    def read(cfg: _Paths) -> str:
        return cfg.train.read_text() * cfg.seed

    train = tmp_path / "train.csv"
    train.write_text("a\n1\n")

    @pipeline
    def configured(cfg: _Paths = _Paths(train, [], 1)):  # noqa: B008
        return read(cfg)

    assert configured.run(store=str(store)).status == "succeeded"
    [entry] = configured.plan(store=str(store), cfg=_Paths(train, [], 2)).entries
    assert entry.reason == "parameter `cfg` changed (seed: 1 → 2)"
    assert configured.run(store=str(store), cfg=_Paths(train, [], 2)).steps["read"].reason == entry.reason
    train.write_text("a\n2\n")
    assert configured.run(store=str(store), cfg=_Paths(train, [], 3)).steps["read"].reason == \
        f"parameter `cfg` changed (seed: 2 → 3); content of file `cfg` changed ({train})"
    train.write_text("a\n3\n")
    assert configured.run(store=str(store), cfg=_Paths(train, [], 3)).steps["read"].reason == \
        f"content of file `cfg` changed ({train})"


class _Settings:
    """A plain config object of the user's (not a dataclass)."""

    def __init__(self, data: Path, rows: int) -> None:
        self.data, self.rows = data, rows


def _read_rows(path: Path, rows: int = 1) -> str:
    return "".join(path.read_text().splitlines(keepends=True)[:rows])


def _reader(path: Path):
    def read() -> str:
        return path.read_text()
    return read


@pytest.mark.parametrize("kind", ["partial", "closure", "object", "pydantic"])
def test_paths_held_by_a_parameter_object_are_file_inputs(tmp_path, store, kind):
    """A partial's bound path, a function's closure path and a config object's path field count by content."""
    import functools

    @step
    def call(fn) -> str:
        return fn()

    @step
    def configured(cfg) -> str:
        return _read_rows(cfg.data, cfg.rows)

    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    if kind == "pydantic":
        pydantic = pytest.importorskip("pydantic")
        model = pydantic.create_model("Settings", data=(Path, ...), rows=(int, 1))

    @pipeline
    def held():
        if kind == "partial":
            return call(functools.partial(_read_rows, data, rows=2))
        if kind == "closure":
            return call(_reader(data))
        if kind == "object":
            return configured(_Settings(data, 2))
        return configured(model(data=data, rows=2))

    name, arg = ("call", "fn") if kind in ("partial", "closure") else ("configured", "cfg")
    assert held.run(store=str(store)).status == "succeeded"
    assert held.run(store=str(store)).steps[name].status == "cached"
    data.write_text("a\n2\n")
    run = held.run(store=str(store))
    assert (run.steps[name].reason, run.output()) == (f"content of file `{arg}` changed ({data})", "a\n2\n")
    assert held.run(store=str(store)).steps[name].status == "cached"  # once, not on every run


def test_a_parameter_object_without_paths_keeps_its_key(tmp_path, store):
    """Only objects that hold a path are keyed differently: a function or object without one is as before."""
    from orchestrator.dag import _with_file_refs

    settings = _Settings(None, 2)  # type: ignore[arg-type]
    for value in (settings, _reader("text, not a path"), _read_rows, 5, "x"):
        assert _with_file_refs(value, None, {}, "arg") is value


def test_a_miss_names_the_file_of_a_list_of_paths_that_changed(tmp_path, store):
    """Not the list's first file, whatever happened to another one."""
    @step
    def total(files: list[Path], extra: dict[str, Path]) -> int:
        return sum(len(p.read_text()) for p in [*files, *extra.values()] if p.exists())

    first, second, third = (tmp_path / f"{n}.csv" for n in ("first", "second", "third"))
    for path in (first, second, third):
        path.write_text(f"a,b\n{path.stem},1\n")  # each its own content: equal files would share keys

    @pipeline
    def merged(files: list[Path] = [first, second], extra: dict[str, Path] = {"x": third}):  # noqa: B006
        return total(files, extra)

    def reason(**params) -> str:
        return merged.run(store=str(store), **params).steps["total"].reason

    assert reason() == "no earlier result"
    second.write_text("a,b\nsecond,2\n")
    assert reason() == f"content of file `files` changed ({second})"
    second.unlink()
    assert reason() == f"file `files` is gone ({second})"
    second.write_text("a,b\nsecond,2\n")
    assert merged.run(store=str(store)).steps["total"].status == "cached"
    assert reason(files=[first, third]) == f"parameter `files` changed (now {third})"
    assert reason(files=[first]) == f"parameter `files` changed (no longer {third})"
    third.write_text("changed")
    assert reason(files=[first]) == f"content of file `extra` changed ({third})"
    other = str(tmp_path / "other")
    merged.run(store=other)
    assert merged.run(store=other, files=[second, first]).steps["total"].reason == \
        "parameter `files` changed (the same files in another order)"


def test_text_paths_of_a_list_path_parameter_count_beside_an_annotation_only_a_type_checker_resolves(
        tmp_path, store, monkeypatch):
    """This module's annotations are text: one naming what only a type checker imports (`frame`) made
    every annotation of the step unresolved, so `files: list[Path]` given as text counted as text, and
    editing the file left the step cached."""
    @step
    def total(files: list[Path], frame: TypeCheckerOnly | None = None) -> int:  # noqa: F821
        return sum(len(Path(p).read_text()) for p in files)

    @pipeline
    def texts():
        return total(["data.csv"])

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("a\n1\n")
    assert texts.run(store=str(store)).output() == 4
    (tmp_path / "data.csv").write_text("a\n12\n")
    run = texts.run(store=str(store))
    assert run.steps["total"].status == "ran" and run.output() == 5


def test_a_folder_input_holding_the_store_stays_cached(tmp_path, monkeypatch):
    """The store a run writes to (./cache under the folder `.`) is no part of the folder's content."""
    from orchestrator.context import Context
    from orchestrator.provenance import walk

    @step
    def listing(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.glob("*.csv"))

    @pipeline
    def project(folder: Path = Path(".")):
        return listing(folder)

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text("x\n1\n")
    first = project.run(store="cache")
    assert project.run(store="cache").steps["listing"].status == "cached"
    assert project.run(store="cache").steps["listing"].status == "cached"
    (tmp_path / "b.csv").write_text("x\n2\n")
    assert project.run(store="cache").steps["listing"].reason == \
        f"content of file `folder` changed ({tmp_path}: b.csv added)"
    (tmp_path / "b.csv").unlink()
    again = project.run(store="cache")
    assert (again.steps["listing"].status, again.output()) == ("cached", ["a.csv"])
    # `orch lineage .` finds the runs that read the folder as it is now.
    graph = walk(Context.open("cache").lineage, ".", "downstream")
    assert any(first.id in label for label in (v.label for v in graph.vertices.values()))
    # A store somewhere else inside the folder, with its metadata elsewhere again.
    (tmp_path / "sub").mkdir()
    assert project.run(store="sub/store", metadata="meta").steps["listing"].status == "ran"
    assert project.run(store="sub/store", metadata="meta").steps["listing"].status == "cached"


def test_a_changed_folder_input_names_its_files_and_ignores_tool_debris(tmp_path, monkeypatch):
    """Opening the folder (Finder, Jupyter, vim) keeps the step cached; an edit names the file."""
    @step
    def count(folder: Path) -> int:
        return len(list(folder.rglob("*.csv")))

    @pipeline
    def project(folder: Path = Path("data")):
        return count(folder)

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for name in ("a.csv", "b.csv", "sub/c.csv"):
        (data / name).write_text(f"x\n{name}\n")
    assert project.run(store="cache").status == "succeeded"
    (data / ".DS_Store").write_bytes(b"\0\1")
    (data / ".ipynb_checkpoints").mkdir()
    (data / ".ipynb_checkpoints" / "a-checkpoint.csv").write_text("x\n")
    (data / ".b.csv.swp").write_text("swap")
    (data / "notes.tmp").write_text("scratch")
    (data / ".orchignore").write_text("*.tmp\n")
    assert project.plan(store="cache").entries[0].status == "cached"
    (data / "sub" / "c.csv").write_text("x\nedited\n")
    (data / "d.csv").write_text("x\n")
    (data / "a.csv").unlink()
    [entry] = project.plan(store="cache").entries
    assert entry.reason == f"content of file `folder` changed ({data}: sub/c.csv edited, d.csv added, a.csv removed)"
    assert project.run(store="cache").steps["count"].reason == entry.reason
    for i in range(4):
        (data / f"new{i}.csv").write_text("x\n")
    assert project.plan(store="cache").entries[0].reason == \
        f"content of file `folder` changed ({data}: new0.csv added, new1.csv added, new2.csv added and 1 more)"
    # A folder of more files than a key lists is named as a whole.
    monkeypatch.setattr("orchestrator.dag.LISTED_FILES", 2)
    assert project.plan(store="cache").entries[0].reason == f"content of file `folder` changed ({data})"


def test_a_list_of_paths_recorded_by_an_older_version_is_explained_without_guessing():
    """Such a key recorded no digests: the reason cannot tell which file changed, and does not name one."""
    from orchestrator.cache import explain

    old = {"code": "c", "params": {"files": "h1"}, "files": {"files": ["/d/a.csv", True],
                                                             "files[1]": ["/d/b.csv", True]}}
    new = {"code": "c", "params": {"files": "h2"}, "files": {"files": [["/d/a.csv", True, "x"],
                                                                       ["/d/b.csv", True, "y"]]}}
    assert explain(old, new) == "content of a file of `files` changed"
    new["files"]["files"][1] = ["/d/b.csv", False, None]
    assert explain(old, new) == "file `files` is gone (/d/b.csv)"


def test_a_helper_renamed_with_the_same_code_is_one_change_named_as_such():
    """Counted as "no longer uses" plus "now uses", a rename made an older run with an edit of the
    step's body look closer than the last run, and the reason said "its code changed" of a step not edited."""
    from orchestrator.cache import _closest_reason

    last = {"code": "a", "code_parts": {"<self>": "s", "text.clean": "d1"}}
    older = {"code": "b", "code_parts": {"<self>": "s2", "text.normalize": "d1"}}
    now = {"code": "c", "code_parts": {"<self>": "s", "text.normalize": "d1"}}
    assert _closest_reason([last, older], now) == "`text.clean` is now `text.normalize` (the same code)"
    edited = {"code": "d", "code_parts": {"<self>": "s", "text.normalize": "d2"}}
    assert _closest_reason([last], edited) == "no longer uses `text.clean`; now uses `text.normalize`"


def test_a_module_used_whole_is_named_as_a_module():
    from orchestrator.cache import explain

    old = {"code": "a", "code_parts": {"<self>": "s", "module helpers": "m1"}}
    assert explain(old, {"code": "b", "code_parts": {"<self>": "s", "module helpers": "m2"}}) == \
        "code of module `helpers` changed"


def test_corrupted_object_is_detected_and_recomputed(tmp_path, store, calls):
    big = "x" * 100_000  # large enough to be stored as a file, not inline

    @step
    def make(n: int) -> str:
        return big * n

    @step
    def size(text: str) -> int:
        return len(text)

    @pipeline
    def corrupt(n: int = 2):
        return size(make(n))

    first = corrupt.run(store=str(store))
    assert first.output() == 200_000
    digest = first.steps["make"].outputs["out"]
    from orchestrator.store import ArtifactStore

    obj = ArtifactStore(store).path_of(digest)
    data = bytearray(obj.read_bytes())
    data[-10] ^= 0xFF
    obj.write_bytes(bytes(data))
    # Force `size` to run, so it must read the damaged input.
    run = corrupt.run(store=str(store), rerun=["size"])
    assert run.status == "succeeded", run.error
    assert run.steps["make"].status == "ran"
    assert run.steps["make"].reason == "stored output was damaged"
    assert run.output() == 200_000
    assert ArtifactStore(store).verify(digest) is None


def test_a_damaged_input_recomputed_mid_run_readies_its_other_consumers_only_once(store):
    """A producer re-run to repair its damaged output released its consumers a second time: a step
    with another parent still to run was started without it (KeyError out of the run loop)."""
    big = "x" * 100_000  # stored as a file

    @step
    def make(n: int) -> str:
        return big * n

    @step
    def first(text: str, k: int) -> int:
        return len(text) + k

    @step
    def second(v: int) -> int:
        return v * 2

    @step
    def join(b: int, text: str) -> int:
        return b + len(text)

    @pipeline
    def diamond(n: int = 2, k: int = 0):
        text = make(n)
        return join(second(first(text, k=k)), text)

    before = diamond.run(store=str(store))
    from orchestrator.store import ArtifactStore

    obj = ArtifactStore(store).path_of(before.steps["make"].outputs["out"])
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    run = diamond.run(store=str(store), k=1)
    assert run.status == "succeeded", run.error
    assert {name: s.status for name, s in run.steps.items()} == {
        "make": "ran", "first": "ran", "second": "ran", "join": "ran"}
    assert run.steps["make"].reason == "stored output was damaged"
    assert run.output() == (200_000 + 1) * 2 + 200_000


def test_a_damaged_input_is_said_to_come_from_the_step_the_reader_read_it_from(store, capsys):
    """`validate` returns `make`'s list unchanged: both output the damaged object. `total` reads it from
    `validate`, and the line said "input from 'make'", the first step found with that digest."""
    from orchestrator.cli import main
    from orchestrator.store import ArtifactStore

    passthrough = str(PIPELINES / "passthrough.py")  # load -> a_check (returns it unchanged) -> total
    first = load_pipeline(passthrough).run(store=str(store), n=5000)
    digest = first.steps["load"].outputs["out"]
    assert first.steps["a_check"].outputs["out"] == digest
    obj = ArtifactStore(store).path_of(digest)
    data = bytearray(obj.read_bytes())
    data[-10] ^= 0xFF
    obj.write_bytes(bytes(data))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), "run", passthrough, "-p", "n=5000", "--rerun", "total"])
    err = capsys.readouterr().err
    assert exited.value.code == 0, err
    assert "total: input from 'a_check' was damaged" in err
    assert "a_check: input from 'load' was damaged" in err  # a_check, run again, read it from load
    assert "input from 'load' was damaged" not in err.split("a_check: input")[0]
    assert ArtifactStore(store).verify(digest) is None


def test_a_damaged_output_the_pipeline_returns_is_recomputed_not_reported_cached(store, calls):
    """Nothing in the run loads what the pipeline returns, so only a check of the cached object
    keeps ``run.output()`` from failing on a run that says it succeeded."""
    big = "x" * 100_000  # stored as a file

    @step
    def make(n: int) -> str:
        return big * n

    @step
    def twice(text: str) -> str:
        return text * 2

    @pipeline
    def returned(n: int = 2):
        return twice(make(n))

    first = returned.run(store=str(store))
    from orchestrator.store import ArtifactStore

    objects = ArtifactStore(store)
    for digest in (first.steps["make"].outputs["out"], first.steps["twice"].outputs["out"]):
        path = objects.path_of(digest)
        os.truncate(path, path.stat().st_size // 2)  # a lost unsynced write, a full disk
    run = returned.run(store=str(store))
    assert run.status == "succeeded", run.error
    assert {name: (s.status, s.reason) for name, s in run.steps.items()} == {
        "make": ("ran", "stored output was damaged"), "twice": ("ran", "stored output was damaged")}
    assert run.output() == big * 4
    assert objects.verify(run.steps["twice"].outputs["out"]) is None
    assert returned.run(store=str(store)).steps["twice"].status == "cached"


def test_a_step_that_changes_folder_environment_or_sys_path_does_not_pass_it_on(store, tmp_path, monkeypatch):
    """The sequential executor runs steps in the caller's process: what one step changes there
    must not reach the next step (a relative path read in another folder), nor the caller."""
    import sys

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("ORCH_TEST_LEAK", raising=False)
    path_before = list(sys.path)
    handlers_before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    @step(untracked="elsewhere")  # a folder they move into, not data they read
    def wander(x: int) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a library that takes Ctrl-C and kill over
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, lambda *_: None)  # a library reloading its config on SIGHUP
        os.chdir(elsewhere)
        os.environ["ORCH_TEST_LEAK"] = "set by wander"
        sys.path.insert(0, str(elsewhere))
        return x

    @step(untracked="elsewhere")
    def look(x: int) -> dict:
        return {"cwd": os.getcwd(), "env": os.environ.get("ORCH_TEST_LEAK"),
                "path": str(elsewhere) in sys.path, "ctrl-c": signal.getsignal(signal.SIGINT) is not signal.SIG_IGN,
                "hangup": signal.getsignal(signal.SIGHUP) is handlers_before[signal.SIGHUP]}

    @pipeline
    def wandering(x: int = 1):
        return look(wander(x))

    run = wandering.run(store=str(store))
    assert run.output() == {"cwd": str(work), "env": None, "path": False, "ctrl-c": True, "hangup": True}
    assert os.getcwd() == str(work) and "ORCH_TEST_LEAK" not in os.environ and sys.path == path_before
    assert {sig: signal.getsignal(sig) for sig in handlers_before} == handlers_before


def test_a_step_that_changes_or_removes_a_variable_leaves_the_next_step_the_environment_it_had(store, monkeypatch):
    monkeypatch.setenv("ORCH_TEST_CHANGED", "before")
    monkeypatch.setenv("ORCH_TEST_REMOVED", "there")

    @step
    def meddle(x: int) -> int:
        os.environ["ORCH_TEST_CHANGED"] = "after"
        del os.environ["ORCH_TEST_REMOVED"]
        return x

    @step
    def look(x: int) -> list:
        return [os.environ.get("ORCH_TEST_CHANGED"), os.environ.get("ORCH_TEST_REMOVED")]

    @pipeline
    def meddling(x: int = 1):
        return look(meddle(x))

    assert meddling.run(store=str(store)).output() == ["before", "there"]
    assert (os.environ["ORCH_TEST_CHANGED"], os.environ["ORCH_TEST_REMOVED"]) == ("before", "there")


HOLD_KEY_LOCK = """
import os, sys, time
from orchestrator.locks import try_lock
lock = try_lock(sys.argv[1], sys.argv[2])
assert lock is not None
print("held", flush=True)
give_up = time.time() + 30  # so that a run that never says it waits fails the test, not hangs it
while not os.path.exists(sys.argv[3]) and time.time() < give_up:  # until the run says it waits
    time.sleep(0.01)
"""


def test_a_run_waiting_for_another_runs_step_says_so(store, tmp_path):
    """Another run computing the same key may take hours: the waiting run must not look hung."""
    import subprocess
    import sys

    from orchestrator.report import RunObserver

    @step
    def shared(x: int) -> int:
        return x * 2

    @pipeline
    def waits(x: int = 4):
        return shared(x)

    key = waits.plan(store=str(store)).entries[0].key
    said = tmp_path / "said"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_KEY_LOCK, str(store), key, str(said)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"

    class Seen(RunObserver):
        waited: list[str] = []

        def step_waiting(self, node: str) -> None:
            self.waited.append(node)
            said.touch()  # the other "run" ends without a result: this one computes it

    run = waits.run(store=str(store), progress=Seen())
    holder.wait(timeout=60)
    assert Seen.waited == ["shared"]
    assert run.status == "succeeded" and run.output() == 8


RACED_PIPELINE = """
from pathlib import Path
from orchestrator import pipeline, step

@step
def shared(x: int) -> int:
    with open(Path(__file__).with_name("ran.txt"), "a") as f:
        f.write("ran\\n")
    return x * 2

@pipeline
def raced(x: int = 4):
    return shared(x)
"""


def test_a_key_another_run_stored_between_the_lookup_and_the_lock_is_a_hit(store, tmp_path, monkeypatch):
    """The lookup found nothing; another run computed the key and let its lock go before this run took it:
    this run takes that result (cached), it does not compute it a second time."""
    import subprocess
    import sys

    from orchestrator.locks import StoreLocks

    source = tmp_path / "raced.py"
    source.write_text(RACED_PIPELINE)
    take = StoreLocks.try_lock

    def other_run_first(self, key):
        if not (tmp_path / "ran.txt").exists():  # the other run, in its own process, before the lock
            subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), "run", f"{source}:raced"],
                           check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        return take(self, key)

    monkeypatch.setattr(StoreLocks, "try_lock", other_run_first)
    run = load_pipeline(f"{source}:raced").run(store=str(store))
    assert run.status == "succeeded", run.error
    assert run.steps["shared"].status == "cached" and run.output() == 8
    assert (tmp_path / "ran.txt").read_text() == "ran\n"  # computed once, by the other run


def test_multiple_outputs_and_aliases(store):
    @step
    def split(xs: list) -> tuple[list, list]:
        return xs[: len(xs) // 2], xs[len(xs) // 2:]

    @step(outputs=("total", "count"))
    def stats(xs: list):
        return sum(xs), len(xs)

    @step
    def add(a: int, b: int) -> int:
        return a + b

    @pipeline
    def multi(xs: list = [1, 2, 3, 4]):  # noqa: B006
        left, right = split(xs)
        t1, _ = stats(left)
        t2, _ = stats(right)
        return add(t1, t2), add.alias("again")(t1, 0)

    run = multi.run(store=str(store))
    assert list(run.steps) == ["split", "stats", "stats_2", "add", "again"]
    assert set(run.steps["split"].outputs) == {"out0", "out1"}
    assert set(run.steps["stats"].outputs) == {"total", "count"}
    assert run.output() == (10, 3)


def test_step_outside_pipeline_is_a_plain_function():
    @step(retries=3)
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8


def test_pipeline_body_runs_plain_python_with_loops(store):
    @step
    def square(x: int) -> int:
        return x * x

    @step
    def total(values: list) -> int:
        return sum(values)

    @pipeline
    def loop(n: int = 4, skip_odd: bool = False):
        squares = [square(i) for i in range(n) if not (skip_odd and i % 2)]
        return total(squares)

    run = loop.run(store=str(store))
    assert list(run.steps) == ["square", "square_2", "square_3", "square_4", "total"]
    assert run.output() == 14
    assert loop.run(store=str(store), skip_odd=True).output() == 4


def test_definition_mistakes_are_reported_together_with_locations():
    @step
    def fit(train: list, alpha: float) -> float:
        return alpha

    @pipeline
    def broken():
        fit([1], alpah=0.1)
        return fit(train=[1])

    with pytest.raises(PipelineDefinitionError) as info:
        broken.build()
    message = str(info.value)
    assert "has no parameter 'alpah'. Did you mean 'alpha'?" in message
    assert "is called without input 'alpha'" in message
    assert "test_runner.py:" in message


def test_unknown_pipeline_parameter_suggests_close_match(store):
    @step
    def one(lr: float) -> float:
        return lr

    @pipeline
    def train(lr: float = 0.1):
        return one(lr)

    with pytest.raises(UserError, match="pipeline 'train' has no parameter 'lrr'. Did you mean 'lr'?"):
        train.run(store=str(store / "new"), lrr=0.2)
    assert not (store / "new").exists()  # the mistake is found before a store is made


def test_using_a_placeholder_as_a_value_is_a_clear_error():
    @step
    def load() -> int:
        return 1

    @step
    def use(x: int) -> int:
        return x

    @pipeline
    def misuse():
        raw = load()
        if raw:
            return use(raw)
        return None

    with pytest.raises(PipelineDefinitionError, match="does not exist until the step runs"):
        misuse.build()


def test_unhashable_argument_is_reported_by_name(store):
    import threading

    @step
    def use(lock) -> int:
        return 1

    @pipeline
    def bad():
        return use(threading.Lock())

    with pytest.raises(PipelineDefinitionError, match="argument 'lock' cannot be hashed") as refused:
        bad.build()
    # Not "make it a step that produces it": a step cannot return a lock either.
    assert str(refused.value).endswith("for a connection, client, lock or open file, pass what it is made "
                                       "from (a path, a URL, settings) and open it inside the step.")

    @pipeline
    def lazy():
        return use(x for x in range(3))

    with pytest.raises(PipelineDefinitionError, match=r"argument 'lock' cannot be hashed \(.*generator.*\)\. "
                       r"Pass a list of its items \(`list\(...\)`\): a generator or iterator is used up"):
        lazy.build()


def test_argument_whose_repr_fails_is_hashed_and_shown_by_type(store):
    import dataclasses

    @dataclasses.dataclass
    class Fitted:
        alpha: float
        coef: float = dataclasses.field(init=False)  # set by a fit that has not run yet

    @step
    def use(model) -> float:
        return model.alpha

    @pipeline
    def fitting():
        return use(Fitted(0.5))

    run = fitting.run(store=str(store))
    assert run.status == "succeeded" and run.output() == 0.5
    assert fitting.run(store=str(store)).steps["use"].status == "cached"


def test_cache_false_always_runs_and_rerun_forces(store, calls):
    counter = {"n": 0}

    @step(cache=False)
    def now() -> int:
        counter["n"] += 1
        return 5

    @step
    def keep(x: int) -> int:
        return x

    @pipeline
    def always():
        return keep(now())

    always.run(store=str(store))
    run = always.run(store=str(store))
    assert counter["n"] == 2
    assert run.steps["now"].reason == "cache disabled for this step (cache=False)"
    assert run.steps["keep"].status == "cached"  # same output: early cutoff
    forced = always.run(store=str(store), rerun=["keep"])
    assert forced.steps["keep"].status == "ran"
    assert forced.steps["keep"].reason == "forced with rerun="
    with pytest.raises(UserError, match="has no step 'kep'. Did you mean 'keep'?"):
        always.run(store=str(store), rerun=["kep"])


def test_logs_are_captured_per_attempt(store):
    import logging

    @step
    def noisy() -> int:
        print("to stdout")
        import sys

        print("to stderr", file=sys.stderr)
        logging.getLogger("user").warning("a log record")
        return 1

    @pipeline
    def talk():
        return noisy()

    run = talk.run(store=str(store))
    from orchestrator.lineage_db import Lineage

    attempt = Lineage(store / "metadata.db").attempts(run.id, "noisy")[0]
    assert attempt["stdout"] == "to stdout\n"
    assert attempt["stderr"] == "to stderr\n"
    assert "WARNING user: a log record" in attempt["logs"]


def test_output_is_loaded_from_store_with_same_digest(store):
    import pandas as pd

    from orchestrator.hashing import hash_value

    @step
    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({"a": range(n), "b": [f"s{i}" for i in range(n)]}).set_index("b")

    @pipeline
    def frames(n: int = 5000):
        return frame(n)

    run = frames.run(store=str(store))
    loaded = run.output()
    assert hash_value(loaded) == run.steps["frame"].outputs["out"]
    pd.testing.assert_frame_equal(loaded, frame(5000))


def test_metrics_outputs_are_recorded_on_the_run_also_when_cached(store):
    from orchestrator import Metrics

    @step
    def score(x: int) -> Metrics:
        import numpy as np

        return Metrics(accuracy=x / 10, label="ok", depth=3, trees=np.int64(100), whole=2.0, flag=True)

    @pipeline
    def scored(x: int = 9):
        return score(x)

    expected = {"accuracy": 0.9, "label": "ok", "depth": 3, "trees": 100, "whole": 2.0, "flag": "True"}
    first = scored.run(store=str(store))
    assert first.metrics == expected
    assert type(first.metrics["depth"]) is int and type(first.metrics["whole"]) is float
    second = scored.run(store=str(store))
    assert second.steps["score"].status == "cached"
    assert second.metrics == expected


def test_a_metric_that_several_nodes_report_is_recorded_under_each_node(store):
    from orchestrator import Metrics

    @step
    def evaluate(depth: int) -> Metrics:
        return Metrics(accuracy=depth / 10, **({"trees": 100} if depth == 5 else {}))

    @step
    def holdout(depth: int) -> Metrics:
        return Metrics(accuracy=0.7, rows=20)

    @pipeline
    def compared():
        evaluate(1)
        evaluate(5)
        return holdout(3)

    # Whichever finishes last must not silently win: every reporter keeps its value, by node name.
    expected = {"evaluate.accuracy": 0.1, "evaluate_2.accuracy": 0.5, "holdout.accuracy": 0.7,
                "trees": 100, "rows": 20}
    assert compared.run(store=str(store)).metrics == expected
    again = compared.run(store=str(store))
    assert again.steps["evaluate_2"].status == "cached"
    assert again.metrics == expected


def test_metrics_of_a_long_map_are_written_with_the_step_records_not_once_per_item(store, monkeypatch):
    # Each item committed its records, then rewrote all of the run's metrics in a transaction of
    # its own: a map of 2,000 items spent most of its time there. Count the writes, not the time.
    from orchestrator import Metrics
    from orchestrator.lineage_db import Lineage

    @step
    def evaluate(lr: float) -> Metrics:
        return Metrics(accuracy=lr * 2)

    @pipeline
    def search(n: int = 200):
        return evaluate.map([i / 100 for i in range(n)])

    monkeypatch.setenv("ORCH_COMMIT_BUDGET", "3600")  # commits only where the runner must
    writes = [0]
    transaction = Lineage.transaction

    def counted(self):
        writes[0] += 1
        return transaction(self)

    monkeypatch.setattr(Lineage, "transaction", counted)
    run = search.run(store=str(store))
    assert len(run.metrics) == 200 and run.metrics["evaluate_200.accuracy"] == 3.98
    assert writes[0] < 20, writes[0]
    writes[0] = 0
    assert search.run(store=str(store)).metrics == run.metrics  # cached: the same, in as few writes
    assert writes[0] < 20, writes[0]


def test_an_exception_in_the_pipeline_body_is_one_clear_error():
    @step
    def one() -> int:
        return 1

    @pipeline
    def broken_body(n: int = 3):
        values = {"a": 1}
        one()
        return values["missing"]

    with pytest.raises(PipelineDefinitionError, match=r"the body of pipeline 'broken_body' .* raised KeyError: 'missing' at test_runner.py:\d+"):
        broken_body.build()


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_step_changing_its_input_in_place_does_not_reach_its_siblings(executor, tmp_path):
    """The sequential executor hands kept values over as copies (or reloads them): like every executor."""
    mutating = _load("mutating.py:mutating")
    run = mutating.run(store=str(tmp_path / "store"), executor=executor, workers=None if executor == "sequential" else 2)
    assert run.status == "succeeded", run.error
    assert run.output() == {"frame": 6, "array": 6, "items": 6, "n": 4}
    again = mutating.run(store=str(tmp_path / "store"), rerun=("read",))
    assert again.steps["read"].outputs == run.steps["read"].outputs  # the cached result was the right one
    # Values made in the pipeline body and passed to two steps: each step has its own.
    body = _load("mutating.py:body_values").run(store=str(tmp_path / "store"), executor=executor, workers=None if executor == "sequential" else 2)
    assert body.output() == [3, 3, 5]


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_returned_object_the_step_changes_later_reaches_its_readers_as_it_was_stored(executor, tmp_path):
    """A step returning a module-level array that another step then changes in place: its readers
    read the value its digest names, on every executor (the sequential one kept the live array)."""
    with pytest.warns(UserWarning, match="step 'refill' changes BUFFER .mutating.py., which step 'buffer' reads"):
        run = _load("mutating.py:kept_buffer").run(store=str(tmp_path / "store"), executor=executor,
                                                   workers=2 if executor == "process" else None)
    assert run.status == "succeeded", run.error
    stored = float(run.steps["buffer"].output().sum())
    assert run.steps["total"].output() == stored
    assert run.steps["total_2"].output() == stored  # BUFFER as the body passed it, not as `refill` left it


def test_a_large_array_reaches_its_readers_mapped_from_the_store_not_copied(store):
    """The sequential executor copied a step's array once to keep it and once more per reader: a
    1 GB array held 2 GB of the driver's memory. A large one is now mapped from the store, as every
    other executor loads it, and a reader changing it in place still changes only its own view."""
    import numpy as np

    from orchestrator.handover import MAPPED_ABOVE

    rows = MAPPED_ABOVE // 8 + 1

    @step
    def make(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)

    @step
    def spoil(a: np.ndarray) -> list:
        owned = bool(a.flags.owndata)
        a *= -1  # in place: reaches no other reader
        return [owned, float(a[1])]

    @step
    def total(a: np.ndarray) -> list:
        return [bool(a.flags.owndata), float(a.sum())]

    @pipeline
    def arrays(n: int = rows):
        a = make(n)
        return spoil(a), total(a)

    run = arrays.run(store=str(store))
    assert run.status == "succeeded", run.error
    (spoil_owned, spoiled), (total_owned, summed) = run.output()
    assert not spoil_owned and not total_owned  # views of the mapped object, no copies
    assert spoiled == -1.0 and summed == float(np.arange(rows, dtype=np.float64).sum())


def test_a_timed_step_maps_its_inputs_from_the_store_instead_of_receiving_them_pickled(store, monkeypatch):
    """A timed step runs in a child process, and the sequential executor sent it the frames it kept,
    pickled: a copy in the driver and another in the child (a 500 MB frame held 2 GB there)."""
    import pandas as pd

    from orchestrator.executors import sequential
    from orchestrator.task import ArtifactRef

    sent = []
    in_child = sequential.run_in_child

    def recorded(spec, timeout):
        sent.append({name: type(value) for name, value in spec.arguments.items()})
        return in_child(spec, timeout)

    monkeypatch.setattr(sequential, "run_in_child", recorded)

    @step
    def make(n: int) -> pd.DataFrame:
        return pd.DataFrame({"a": range(n)})

    @step(timeout=60)
    def total(df: pd.DataFrame, k: int) -> int:
        df["a"] *= k  # in place, in the child's own mapping
        return int(df["a"].sum())

    @pipeline
    def timed(n: int = 1000):
        frame = make(n)
        return total(frame, 2), total(frame, 3)

    run = timed.run(store=str(store))
    assert run.status == "succeeded", run.error
    assert run.output() == (999_000, 1_498_500)
    assert sent == [{"df": ArtifactRef, "k": int}] * 2


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_value_the_body_changes_after_a_call_reaches_that_call_as_it_was(executor, store):
    """A sweep that edits one dict between calls: each call runs on the dict as it was at the call,
    like a plain call, and so is cached under it (every call ran on the last one)."""
    @step
    def train(cfg: dict, layers: list) -> str:
        return f"{cfg['lr']} {layers}"

    @pipeline
    def sweep():
        cfg, layers, runs = {"lr": 0.0}, [8], []
        for lr in (0.1, 0.2):
            cfg["lr"] = lr
            layers.append(len(layers))
            runs.append(train(cfg, layers))
        last = train(cfg, [layers, runs[0]])  # a list holding a step's output too
        layers.append(99)
        return last

    run = sweep.run(store=str(store), executor=executor, workers=2 if executor == "process" else None)
    assert run.status == "succeeded", run.error
    assert [run.steps[n].output() for n in ("train", "train_2", "train_3")] == \
        ["0.1 [8, 1]", "0.2 [8, 1, 2]", "0.2 [[8, 1, 2], '0.1 [8, 1]']"]
    assert all(s.status == "ran" for s in run.steps.values())


def test_a_file_the_step_writes_to_its_path_parameter(tmp_path, store, calls):
    """`out: Path` that the step writes: cached once written, made again when deleted or edited."""
    pipe, out = _load("report_path.py"), tmp_path / "report.txt"
    assert pipe.run(store=str(store), out=out).steps["report"].reason == f"file `out` does not exist ({out})"
    calls.clear()
    assert pipe.run(store=str(store), out=out).status == "succeeded" and calls.ran() == set()
    out.unlink()
    run = pipe.run(store=str(store), out=out)
    assert run.steps["report"].reason == f"file `out` does not exist ({out})" and out.read_text() == "n=1\n"
    assert run.steps["double"].status == "cached"
    out.write_text("edited by hand\n")
    calls.clear()
    pipe.run(store=str(store), out=out)
    assert calls.ran() == {"report"} and out.read_text() == "n=1\n"



@pytest.mark.parametrize("given", ["../out/report.txt", "report.txt", "absolute"])
def test_a_file_the_step_writes_is_keyed_as_the_path_was_given(tmp_path, store, calls, monkeypatch, given):
    """The file a step made is keyed again after it ran, by the path as the next build will see it: a
    relative one as given (`../out/report.txt`, not its absolute form), an absolute one inside the folder
    relative to it. Keyed otherwise, the next run would find no result and make the file once more."""
    folder = tmp_path / "proj"
    (tmp_path / "out").mkdir()
    folder.mkdir()
    monkeypatch.chdir(folder)
    out = folder / "report.txt" if given == "absolute" else Path(given)
    pipe = _load("report_path.py")
    assert pipe.run(store=str(store), out=out).steps["report"].status == "ran"
    calls.clear()
    assert pipe.run(store=str(store), out=out).steps["report"].status == "cached" and calls.ran() == set()

@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_namedtuple_or_dict_subclass_argument_reaches_the_step_as_itself(executor, store):
    """A namedtuple config (`cfg.lr`), or one holding step outputs, came as a plain tuple, an
    OrderedDict as a dict and a defaultdict without its default."""
    from collections import OrderedDict, defaultdict, namedtuple

    Config = namedtuple("Config", "lr epochs")

    @step
    def one(n: int) -> int:
        return n

    @step
    def use(cfg, pair, ordered, counts) -> list:
        return [cfg.lr, pair.epochs, type(ordered).__name__, list(ordered), counts["missing"], counts["x"]]

    @pipeline
    def configured():
        pair = Config(lr=one(1), epochs=one(2))
        return use(Config(0.1, 3), pair, OrderedDict(b=one(3), a=1), defaultdict(list, x=one(4)))

    run = configured.run(store=str(store), executor=executor, workers=2 if executor == "process" else None)
    assert run.status == "succeeded", run.error
    assert run.output() == [0.1, 2, "OrderedDict", ["b", "a"], [], 4]


def test_a_value_passed_unchanged_to_many_calls_is_copied_once():
    """The copy each call takes is shared while the value is unchanged: a map over 50 items with one
    array must not hold 50 copies of it; a changed array gets a copy of its own."""
    import numpy as np

    @step
    def score(m: int, features: np.ndarray, cfg: dict) -> float:
        return float(features.sum()) * m

    @pipeline
    def scores():
        features, cfg = np.ones(1000), {"weights": [1.0, 2.0]}
        first = score.map(list(range(50)), features, cfg)
        features[0] = 5.0
        return first, score(99, features, cfg)

    nodes = scores.build().nodes
    copies = {id(nodes[f"score_{i}" if i > 1 else "score"].arguments["features"]) for i in range(1, 51)}
    assert len(copies) == 1 and len({id(n.arguments["cfg"]) for n in nodes.values()}) == 1
    assert id(nodes["score_51"].arguments["features"]) not in copies
    assert nodes["score_51"].arguments["features"][0] == 5.0 and nodes["score"].arguments["features"][0] == 1.0


def test_a_file_an_earlier_step_writes_keys_its_reader_by_the_content_it_reads(store, tmp_path):
    """`count` was keyed by the file as it was before the run, while it read what `prepare` wrote:
    once the old content was back (and `prepare` cached), the cache returned 3 lines for a 1-line file."""
    data = tmp_path / "prepared.txt"

    @step(untracked="where")
    def prepare(n: int, where: str) -> int:
        Path(where).write_text("x\n" * n)  # a file it writes beside its result
        return n

    @step
    def count(path: Path, after: int) -> int:
        return len(path.read_text().splitlines())

    @pipeline
    def prepared(n: int = 3):
        return count(data, prepare(n, str(data)))

    data.write_text("old\n")
    first = prepared.run(store=str(store))
    assert first.output() == 3
    assert prepared.run(store=str(store)).steps["count"].status == "cached"  # keyed so: a re-run is cached
    data.write_text("old\n")  # `prepare` stays cached and does not write it again
    again = prepared.run(store=str(store))
    assert again.steps["count"].status == "ran" and again.output() == 1


def test_an_output_that_cannot_be_stored_or_is_the_wrong_shape_fails_with_a_clear_line(store):
    @step
    def lazy(n: int):
        return (i for i in range(n))

    @step(outputs=("a", "b"))
    def pair(n: int):
        return n

    @step
    def halves(n: int) -> tuple[list, list]:
        xs = list(range(n))
        train, test = xs[:1], xs[1:]  # noqa: F841 - no return: the mistake under test

    @pipeline
    def outputs(n: int = 3):
        return lazy(n), pair(n), halves(n)

    run = outputs.run(store=str(store))
    assert run.status == "failed"
    assert "step 'lazy' returned generator as its value, which cannot be stored" in run.steps["lazy"].error
    assert "declares 2 outputs (a, b) but returned a value of type int" in run.steps["pair"].error
    assert ("declares 2 outputs (out0, out1) but returned None (did it forget `return`?). Return a tuple"
            in run.steps["halves"].error)


def test_files_a_step_writes_and_returns_in_a_list_or_dict_count_by_content(store, tmp_path):
    """Not by their paths' text: a re-run that wrote other content kept the digest, so the consumer
    that reads the files stayed cached and returned a result of the old content."""
    @step(untracked="tmp_path")  # the folder it writes to: not an input
    def export(rows: int) -> dict[str, list[Path]]:
        paths = [tmp_path / "train.csv", tmp_path / "test.csv"]
        for path in paths:
            path.write_text("x\n" * rows)
        return {"parts": paths}

    @step
    def count(exported: dict[str, list[Path]]) -> int:
        return sum(len(path.read_text().splitlines()) for path in exported["parts"])

    @pipeline
    def exports(rows: int = 1):
        return count(export(rows))

    assert exports.run(store=str(store)).output() == 2
    again = exports.run(store=str(store), rows=5)
    assert again.steps["count"].reason == "input `exported` changed"
    assert again.output() == 10
    assert exports.run(store=str(store), rows=5).steps["count"].status == "cached"


def test_an_open_file_returned_by_a_step_fails_it_instead_of_storing_part_of_its_text(store, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")

    @step
    def handle(path: Path):
        f = open(path)  # noqa: SIM115 - the mistake under test
        f.readline()
        return f

    @pipeline
    def reads(path: Path = data):
        return handle(path)

    run = reads.run(store=str(store))
    assert run.status == "failed"
    assert "step 'handle' returned an open file (TextIOWrapper) as its value, which cannot be stored. " \
           "Return what it holds" in run.steps["handle"].error


def test_named_outputs_may_be_returned_as_a_dict_with_those_keys(store):
    @step(outputs=("train", "test"))
    def split(n: int):
        return {"test": list(range(n, 2 * n)), "train": list(range(n))}

    @step(outputs=("train", "test"))
    def misnamed(n: int):
        return {"train": n, "valid": n}

    @pipeline
    def good(n: int = 2):
        train, test = split(n)
        return train, test

    @pipeline
    def bad(n: int = 2):
        return misnamed(n)

    assert good.run(store=str(store)).output() == ([0, 1], [2, 3])
    assert "declares 2 outputs (train, test) but returned a dict with keys train, valid" \
        in bad.run(store=str(store)).steps["misnamed"].error


def test_a_miss_is_explained_against_the_closest_earlier_result(store):
    """Not the latest run's: after C=0.5 and then the defaults, changing only `features` says just that."""
    @step
    def fit(C: float, seed: int, features: list) -> str:
        return f"{C} {seed} {features}"

    @pipeline
    def train(C: float = 1.0, seed: int = 0, features: list = ["a"]):  # noqa: B006
        return fit(C, seed, features)

    train.run(store=str(store))
    train.run(store=str(store), C=0.5, seed=3)
    run = train.run(store=str(store), features=["a", "b"])
    assert run.steps["fit"].reason == 'parameter `features` changed (["a"] → ["a", "b"])'
    assert train.run(store=str(store), C=0.5, seed=3).steps["fit"].status == "cached"


def test_a_reason_names_a_few_of_many_changed_parameters_and_counts_the_rest(store):
    """A new config of 12 hyperparameters: one short reason, still explained against the closest run."""
    @step
    def fit(h00: int, h01: int, h02: int, h03: int, h04: int, h05: int, h06: int, h07: int, h08: int,
            h09: int, h10: int, h11: int) -> int:
        return h00 + h11

    @pipeline
    def train(shift: int = 0, extra: int = 0):
        return fit(extra, *(i + shift for i in range(1, 12)))

    train.run(store=str(store))
    train.run(store=str(store), extra=5)  # one change from the first; twelve from the next
    run = train.run(store=str(store), shift=100)
    assert run.steps["fit"].reason == ("parameter `h01` changed (1 → 101); parameter `h02` changed (2 → 102); "
                                       "parameter `h03` changed (3 → 103); parameter `h04` changed (4 → 104); "
                                       "and 7 more changes")
    assert train.run(store=str(store), shift=100, extra=5).steps["fit"].reason == "parameter `h00` changed (0 → 5)"


def test_a_changed_parameter_reason_shows_the_old_and_new_value_when_short(store):
    @step
    def label(n: int, title: str, fn=None) -> str:
        return f"{n} {title}"

    def suffixed(end):
        def add_suffix(text):
            return text + end
        return add_suffix

    @pipeline
    def report(n: int = 1, title: str = "q3", fn=suffixed("!")):  # noqa: B008
        return label(n, title, fn)

    report.run(store=str(store))
    assert report.run(store=str(store), n=2).steps["label"].reason == "parameter `n` changed (1 → 2)"
    assert report.run(store=str(store), n=2, title="Q3 " * 20).steps["label"].reason == "parameter `title` changed"
    # The same function, another closure value: it prints the same, so the reason says what differs.
    changed = report.run(store=str(store), n=2, title="Q3 " * 20, fn=suffixed("?")).steps["label"].reason
    assert changed == "parameter `fn` changed (it prints the same: its code or contents changed)"
    # Long values are shown cut: equal up to the cut is not "prints the same" (a frame one row longer).
    report.run(store=str(store), n=2, title="x" * 300, fn=suffixed("?"))
    cut = report.run(store=str(store), n=2, title="x" * 299 + "y", fn=suffixed("?")).steps["label"].reason
    assert cut == "parameter `title` changed (equal in the first 200 characters it prints: it differs after them)"
    assert " at 0x" not in json.dumps(Context.open(str(store)).lineage.steps(report.run(store=str(store)).id))


@dataclasses.dataclass(frozen=True)
class _Optimizer:
    name: str = "adam"
    learning_rate: float = 0.001
    beta: float = 0.9


@dataclasses.dataclass(frozen=True)
class _TrainConfig:
    estimator: str = "random_forest"
    n_estimators: int = 100
    max_depth: int = 6
    opt: _Optimizer = _Optimizer()


def test_a_changed_config_parameter_reason_names_the_fields_that_changed(store):
    """A config object prints longer than a reason repeats: the reason names the field the user edited."""
    @step
    def fit(cfg: _TrainConfig, grid: dict) -> str:
        return f"{cfg} {grid}"

    @pipeline
    def train(cfg: _TrainConfig = _TrainConfig(), grid: dict = {"alpha": 0.1, "penalty": "l2", "tol": 1e-4}):  # noqa: B006
        return fit(cfg, grid)

    train.run(store=str(store))
    run = train.run(store=str(store), cfg=_TrainConfig(n_estimators=200))
    assert run.steps["fit"].reason == "parameter `cfg` changed (n_estimators: 100 → 200)"
    # Nested configs by their path; several fields at once; a dict of hyperparameters by its keys.
    run = train.run(store=str(store), cfg=_TrainConfig(n_estimators=200, max_depth=3, opt=_Optimizer(beta=0.8)),
                    grid={"alpha": 0.5, "penalty": "l2", "tol": 1e-4, "warm": True})
    assert run.steps["fit"].reason == ("parameter `cfg` changed (max_depth: 6 → 3, opt.beta: 0.9 → 0.8); "
                                       "parameter `grid` changed (alpha: 0.1 → 0.5, warm: (not set) → true)")
    plan = train.plan(store=str(store), cfg=_TrainConfig(estimator="gradient_boosting", n_estimators=200, max_depth=3,
                                                         opt=_Optimizer(beta=0.8)))
    # Against the closest earlier key, the second run's (the same grid), only `cfg` differs, by three fields.
    assert [e.reason for e in plan.entries] == [
        "parameter `cfg` changed (estimator: 'random_forest' → 'gradient_boosting', max_depth: 6 → 3, "
        "opt.beta: 0.9 → 0.8)"]


def test_a_changed_pydantic_config_reason_names_its_fields(store):
    pydantic = pytest.importorskip("pydantic")
    model = pydantic.create_model("ModelConfig", kind=(str, "forest"), n_estimators=(int, 50), max_depth=(int, 4),
                                  seed=(int, 0))

    @step
    def fit(model_cfg: model) -> str:  # type: ignore[valid-type]
        return repr(model_cfg)

    @pipeline
    def train(model_cfg: model = model()):  # type: ignore[valid-type]  # noqa: B008
        return fit(model_cfg)

    train.run(store=str(store))
    run = train.run(store=str(store), model_cfg=model(kind="linear", seed=1))
    assert run.steps["fit"].reason == "parameter `model_cfg` changed (kind: 'forest' → 'linear', seed: 0 → 1)"


class _Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


def test_a_changed_enum_or_date_parameter_reads_as_the_user_writes_it(store):
    """Not as its repr (``"<_Shade.LIGHT: 'light'>"``, ``"datetime.date(2024, 1, 1)"``) in quotes."""
    @step
    def paint(shade: _Shade, day: datetime.date, at: datetime.datetime) -> str:
        return f"{shade} {day} {at}"

    @pipeline
    def daily(shade: _Shade = _Shade.LIGHT, day: datetime.date = datetime.date(2024, 1, 1),
              at: datetime.datetime = datetime.datetime(2024, 1, 1)):
        return paint(shade, day, at)

    daily.run(store=str(store))
    run = daily.run(store=str(store), shade=_Shade.DARK, day=datetime.date(2024, 3, 5),
                    at=datetime.datetime(2024, 2, 3, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=2))))
    assert run.steps["paint"].reason == (
        'parameter `at` changed ("2024-01-01T00:00:00" → "2024-02-03T10:00:00+02:00"); '
        'parameter `day` changed ("2024-01-01" → "2024-03-05"); '
        'parameter `shade` changed ("_Shade.LIGHT" → "_Shade.DARK")')


@step
def _count_frozen() -> int:
    import gc

    return gc.get_freeze_count()


@step
def _fails_on_purpose() -> int:
    raise ValueError("on purpose")


@pipeline
def _freeze_probe():
    return _count_frozen()


@pipeline
def _freeze_failing():
    return _fails_on_purpose()


def test_a_run_keeps_older_objects_out_of_collections_and_thaws_them_after(store):
    import gc

    assert gc.get_freeze_count() == 0
    run = _freeze_probe.run(store=str(store))
    assert run.output() > 0  # the step ran while the objects made before the run were frozen
    assert gc.get_freeze_count() == 0  # and they are collectable again afterwards
    assert _freeze_failing.run(store=str(store)).status == "failed"
    assert gc.get_freeze_count() == 0

    gc.freeze()  # a process that froze its own objects (a pre-fork server) keeps them frozen
    try:
        _freeze_probe.run(store=str(store))
        assert gc.get_freeze_count() > 0  # (objects freed meanwhile leave the count)
    finally:
        gc.unfreeze()


@step
def _quiet(x: int) -> int:
    return x + 1


@step
def _chatty(x: int) -> int:
    print("hello from chatty")
    return x * 2


@pipeline
def _quiet_and_chatty(x: int = 1):
    return _chatty(_quiet(x))


def test_every_step_that_ran_has_its_attempts_quiet_or_not(store):
    run = _quiet_and_chatty.run(store=str(store))
    lineage = Context.open(str(store)).lineage
    [quiet] = lineage.attempts(run.id, "_quiet")
    assert quiet["attempt"] == 1 and quiet["status"] == "succeeded" and quiet["error"] is None
    assert quiet["started"] <= quiet["ended"]
    [chatty] = lineage.attempts(run.id, "_chatty")
    assert chatty["stdout"] == "hello from chatty\n"
    cached = _quiet_and_chatty.run(store=str(store))
    assert lineage.attempts(cached.id, "_quiet") == []  # a cached step made no attempt in that run


def test_recorded_key_parts_are_each_nodes_own(store):
    """Nodes of the same step share the serialized part of their parts, never their inputs."""
    from orchestrator import cache
    from orchestrator.planner import build

    @pipeline
    def two_calls(x: int = 1):
        return _chatty(_quiet(_quiet(_quiet(x))))

    dag = build(two_calls, {}, Context.open(str(store)))
    first, second, third = dag.nodes["_quiet"], dag.nodes["_quiet_2"], dag.nodes["_quiet_3"]
    assert second.static_key == third.static_key
    for node, inputs in ((first, {}), (second, {"x": "ab" * 16}), (third, {"x": "cd" * 16}), (third, {})):
        assert json.loads(cache.key_parts_json(node, inputs)) == cache.key_parts(node, inputs)



def test_recorded_key_parts_are_a_steps_own_when_another_step_has_the_same_code(store):
    """`first` (two_params.py) is `_quiet`'s code in a module without `from __future__ import annotations`.

    Equal code and parameters give equal keys, but each step's explanation parts
    (its bytecode) are its own: recording the other's would explain a later miss wrongly.
    """
    from orchestrator import cache
    from orchestrator.planner import build

    ctx = Context.open(str(store))
    theirs = build(load_pipeline(str(PIPELINES / "two_params.py")), {}, ctx).nodes["first"]
    ours = build(_quiet_and_chatty, {}, ctx).nodes["_quiet"]
    assert theirs.static_key == ours.static_key and theirs.code.parts != ours.code.parts
    for node in (theirs, ours, theirs):
        assert json.loads(cache.key_parts_json(node, {"x": "ab" * 16})) == cache.key_parts(node, {"x": "ab" * 16})


SIGNATURE_OUTPUTS = {
    "constants": "((1, 2, 4), {'z': 10})",
    "posonly": 43,
    "inputs": "((400, 7), {'args': 400, 'kw': [400]})",
    "mixed": "(1, 400, (3, 4), 400, 5, {'e': 1})",
    "posonly_input": 4001,
}


def test_star_args_kwargs_and_positional_only_parameters_get_the_values_passed(store, calls):
    run = _load("signatures.py:signatures").run(store=str(store))
    assert run.status == "succeeded", run.error
    assert run.output() == SIGNATURE_OUTPUTS


def test_keys_of_star_args_steps_follow_their_values_and_inputs(store, calls):
    signatures = _load("signatures.py:signatures")
    first = signatures.run(store=str(store))
    assert {s.status for s in signatures.run(store=str(store)).steps.values()} == {"cached"}
    changed = signatures.run(store=str(store), z=11)  # a constant inside **kwargs
    assert {n for n, s in changed.steps.items() if s.status == "ran"} == {"varargs"}
    assert changed.output()["constants"] == "((1, 2, 4), {'z': 11})"
    calls.clear()
    moved = signatures.run(store=str(store), n=5)  # the output passed through *args and **kwargs changes
    assert moved.output()["inputs"] == "((500, 7), {'args': 500, 'kw': [500]})"
    assert moved.steps["varargs_2"].key != first.steps["varargs_2"].key
    assert calls.counts()["varargs"] == 2 and calls.counts()["mixed"] == 1
    from orchestrator.lineage_db import Lineage

    steps = {s["node"]: s for s in Lineage(store / "metadata.db").steps(moved.id)}
    assert [i["name"] for i in steps["varargs_2"]["inputs"]] == ["args", "kwargs[0]", "kwargs[1]"]


def test_a_map_of_a_star_args_step_passes_each_item_as_its_first_argument(store, calls):
    run = _load("signatures.py:mapped").run(store=str(store))
    assert run.status == "succeeded", run.error
    assert run.output() == ["((0,), {'k': 1})", "((1,), {'k': 1})", "((2,), {'k': 1})"]


class _Model:
    def __init__(self, x: int) -> None:
        self.x = x

    def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize("target,needle", [
    (_Model, "@step cannot decorate class '_Model' (test_runner.py:"),
    (_Model(1), "@step cannot decorate a _Model object (test_runner.py:"),
    (len, "@step cannot decorate 'len', a builtin_function_or_method (test_runner.py:"),
    (staticmethod(lambda x: x), "@step cannot decorate a staticmethod object (test_runner.py:"),
    (42, "@step needs a function, got 42 (test_runner.py:"),
    (functools.cache(lambda x: x), "@step cannot decorate '<lambda>', a functools.lru_cache (or cache) wrapper "
                                   "(test_runner.py:"),
])
def test_step_refuses_what_has_no_python_code_where_it_is_applied(target, needle):
    with pytest.raises(UserError) as info:
        step(target)
    message = str(info.value)
    assert message.startswith(needle) and "\n" not in message
    assert "Write @staticmethod above @step." in message if isinstance(target, staticmethod) \
        else "Drop @lru_cache under @step" in message if isinstance(target, functools._lru_cache_wrapper) \
        else "Decorate a function" in message


def test_bound_methods_static_methods_and_partials_are_steps(store):
    import functools

    class Scaler:
        factor = 3

        @staticmethod
        @step
        def shift(x: int) -> int:
            return x + 1

        def scale(self, x: int) -> int:
            return x * self.factor

    def add(a: int, x: int) -> int:
        return a + x

    scale, add_ten = step(Scaler().scale), step(functools.partial(add, 10))
    assert (add_ten.name, scale.name) == ("add", "scale")

    @pipeline
    def methods(n: int = 2):
        return Scaler.shift(n), scale(n), add_ten(n)

    assert methods.run(store=str(store)).output() == (3, 6, 12)


def test_a_consumer_failing_on_none_names_the_step_that_forgot_to_return(store):
    run = _load("forgot_return.py:forgot").run(store=str(store))
    assert run.status == "failed"
    assert ("step 'total' failed after 1 attempt: TypeError: 'NoneType' object is not iterable "
            "(input 'xs' is None: step 'load' is annotated -> list but returned None; "
            "did it forget `return`?)") in run.error
    assert run.steps["load"].status == "ran"
    optional = _load("forgot_return.py:optional").run(store=str(store))  # -> list | None: None is allowed
    assert optional.status == "failed" and "did it forget" not in optional.error


def test_the_none_hint_reads_string_annotations_and_names_an_output(store):
    @step
    def split(n: int) -> tuple[list, list]:
        return [n], None  # type: ignore[return-value]

    @step
    def quiet(n: int):
        pass

    @step
    def size(xs: list) -> int:
        return len(xs)

    @pipeline
    def halves(n: int = 1):
        _, right = split(n)
        return size(right), size.alias("unannotated")(quiet(n))

    run = halves.run(store=str(store))
    assert run.steps["size"].error.endswith(
        "(input 'xs' is None: output 'out1' of step 'split' is annotated -> list but returned None; "
        "did it forget `return`?)")
    assert run.steps["unannotated"].error == "TypeError: object of type 'NoneType' has no len()"


@pytest.mark.parametrize("annotation,declared", [
    ("list", "list"), ("dict[str, int]", "dict[str, int]"), ("pd.DataFrame", "pd.DataFrame"),
    (list, "list"), (dict[str, int], "dict[str, int]"), (int | str, "int | str"),
    ("None", None), ("Any", None), ("object", None), ("list | None", None), ("None | list", None),
    ("Optional[list]", None), ("typing.Union[int, None]", None), ("'Forward'", None),
    (None, None), (type(None), None), (object, None), (list | None, None), (inspect.Parameter.empty, None),
])
def test_declared_type_is_only_a_type_that_rules_out_none(annotation, declared):
    from orchestrator.step_signature import never_none as _never_none

    assert _never_none(annotation) == declared


def test_a_cache_entry_read_ahead_is_dropped_with_its_artifact(store):
    """Entries read ahead for a re-run never outlive a forget() in the same process."""
    first = _quiet_and_chatty.run(store=str(store))
    lineage = Context.open(str(store)).lineage
    key = lineage.step_row(first.id, "_quiet")["key"]
    digest = first.steps["_quiet"].outputs["out"]
    lineage.preload_cache("_quiet_and_chatty")
    assert lineage._preloaded  # read ahead
    lineage.forget_artifact(digest)
    assert lineage.lookup(key) is None
    lineage.preload_cache("_quiet_and_chatty")
    assert all(digest not in outputs for outputs, _, _ in lineage._preloaded.values())
    again = _quiet_and_chatty.run(store=str(store))
    assert again.steps["_quiet"].status == "ran" and again.steps["_chatty"].status == "cached"


def test_two_runs_that_each_hold_a_key_the_other_needs_both_finish(tmp_path):
    """Each run waits on the other's key while holding its own: both must commit and go on."""
    import subprocess
    import sys
    import time as clock

    from .conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "orchestrator", "--store", str(tmp_path / "store"), "run",
               str(PIPELINES / "two_slow.py"), "--json"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clock.sleep(0.2)
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        outs = [p.communicate(timeout=60) for p in (first, second)]
    finally:
        for p in (first, second):
            p.kill()
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    statuses = [{s["name"]: s["status"] for s in json.loads(out)["steps"]} for out, _ in outs]
    assert all(s["add"] in ("ran", "cached") for s in statuses)


def test_a_key_that_differs_in_nothing_recorded_says_what_else_changes_keys(store):
    """Output names are in the key but not in its recorded parts: renaming them read only "no stored result
    for this key", with nothing to say why the step ran."""
    def make(names: tuple[str, str]):
        @step(outputs=names)
        def halves(n: int):
            return n // 2, n - n // 2

        @pipeline
        def cut(n: int = 5):
            first, _ = halves(n)
            return first

        return cut

    assert make(("a", "b")).run(store=str(store)).steps["halves"].status == "ran"
    renamed = make(("left", "right")).run(store=str(store)).steps["halves"]
    assert renamed.status == "ran"
    assert renamed.reason == ("no stored result for this key: its code, parameters and inputs are as recorded "
                              "before, so its outputs were renamed or an orchestrator upgrade changed how keys "
                              "are made")


@step
def _says(word: str) -> str:
    import time

    print(f"says {word}")
    time.sleep(0.2)  # long enough for the runs of the other threads to start meanwhile
    return word


@pipeline
def _saying(word: str = "a"):
    return _says(word)


def test_runs_from_threads_of_one_process_keep_its_stdout_and_their_own_output(store, capsys):
    """A notebook ran a grid in a ThreadPoolExecutor: each run swapped sys.stdout for its step's
    capture and put back what it had saved, another run's capture, so after all had ended the
    process's stdout was still a capture (every later print lost) and a step's output could be
    recorded in another run's logs. Runs of one process now go one after the other."""
    import sys
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.lineage_db import Lineage

    before = sys.stdout, sys.stderr
    words = ["red", "green", "blue"]
    with warnings.catch_warnings(record=True) as caught, ThreadPoolExecutor(3) as pool:
        warnings.simplefilter("always")
        runs = list(pool.map(lambda w: _saying.run(store=str(store), word=w), words))
    assert (sys.stdout, sys.stderr) == before
    assert [r.output() for r in runs] == words
    lineage = Lineage(store / "metadata.db")
    assert [lineage.attempts(r.id, "_says")[0]["stdout"] for r in runs] == [f"says {w}\n" for w in words]
    # Said as a warning, or on the process's own stderr when a step of the run in progress was running.
    waited = [str(w.message) for w in caught if "in progress in this process" in str(w.message)] + \
        [line for line in capsys.readouterr().err.splitlines() if "in progress in this process" in line]
    assert waited and all("(in another thread): this run starts when it ends" in m for m in waited)
    assert not any("in progress" in (lineage.attempts(r.id, "_says")[0]["stderr"] or "") for r in runs)


def test_a_run_waiting_while_a_step_of_another_runs_says_so_where_it_is_seen(store, capsys):
    """While a step runs, sys.stderr is its capture: the waiting run's warning was kept in that step's
    logs, so a dashboard's run (or one a step's own thread started) waited without a word."""
    import threading

    from orchestrator.lineage_db import Lineage

    started: list[threading.Thread] = []

    @step(untracked="store")
    def starts_a_run(word: str) -> str:
        import time

        started.append(threading.Thread(target=lambda: _saying.run(store=str(store), word="late")))
        started[0].start()
        time.sleep(0.5)  # that run waits meanwhile
        return word

    @pipeline
    def starting(word: str = "first"):
        return starts_a_run(word)

    run = starting.run(store=str(store))
    started[0].join()
    assert run.status == "succeeded", run.error
    assert "in progress" not in (Lineage(store / "metadata.db").attempts(run.id, "starts_a_run")[0]["stderr"] or "")
    said = [line for line in capsys.readouterr().err.splitlines() if "in progress in this process" in line]
    assert said == ["orchestrator: another pipeline run is in progress in this process (in another thread): this "
                    "run starts when it ends, since runs in one process share its stdout, working folder and "
                    "environment. For runs at once, start them in separate processes; for steps at once, use "
                    "executor=\"process\". If a step of that run started this thread and waits for it, neither "
                    "ends: run a pipeline from a step in the step's own thread."]


class _Split(str, enum.Enum):  # noqa: UP042 - the mixin form users write (StrEnum is one too)
    TRAIN = "train"
    TEST = "test"


def _variant(case: str, typed: bool):  # type: ignore[no-untyped-def]
    """Two values that are equal to pandas and numpy's `==` but that a consumer can tell apart."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if case == "str enum column":
        words = [_Split.TRAIN, _Split.TEST] * 50
        return pd.DataFrame({"split": pd.Series([w if typed else w.value for w in words], dtype=object)})
    if case == "masked fill value":
        return np.ma.masked_array([1.0, 2.0], mask=[False, True], fill_value=7.0 if typed else 5.0)
    if case == "column index":
        return pd.DataFrame([[1, 2]], columns=pd.Index([0, 1]) if typed else pd.RangeIndex(2))
    frame = pd.DataFrame({"x": [1.0]})
    frame.attrs["unit"] = "cm" if typed else "m"
    return pa.Table.from_pandas(frame)


def _observe(value) -> str:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return str(value.to_pandas().attrs)
    if hasattr(value, "filled"):
        return str(value.filled().tolist())
    if "split" in getattr(value, "columns", ()):
        return str(sorted({type(item).__name__ for item in value["split"]}))
    return type(value.columns).__name__


@pytest.mark.parametrize("case", ["str enum column", "masked fill value", "column index", "arrow attrs"])
def test_a_consumer_reruns_when_its_input_changes_only_where_its_digest_was_blind(store, case):
    # Each pair hashed alike: the producer re-ran with its new parameter, but its output kept the
    # digest, so early cutoff kept the consumer cached on what it made of the old value.
    seen = []

    @step
    def produce(case: str, typed: bool):  # type: ignore[no-untyped-def]
        return _variant(case, typed)

    @step
    def consume(value) -> str:  # type: ignore[no-untyped-def]
        seen.append(_observe(value))
        return seen[-1]

    @pipeline
    def flow(case: str, typed: bool):  # type: ignore[no-untyped-def]
        return consume(produce(case, typed))

    plain = flow.run(store=str(store), case=case, typed=False)
    assert plain.status == "succeeded", plain.error
    typed = flow.run(store=str(store), case=case, typed=True)
    assert typed.status == "succeeded", typed.error
    assert typed.steps["produce"].status == "ran"
    assert typed.steps["consume"].status == "ran", typed.steps["consume"].reason
    assert typed.output() == _observe(_variant(case, True)) != plain.output()
    assert len(seen) == 2
    again = flow.run(store=str(store), case=case, typed=True)
    assert again.steps["consume"].status == "cached" and again.output() == typed.output()
