"""`orch diff A B` and `orchestrator.diff`: what differs between two runs, and why, from their records.

One project (a file input, a helper, a parameter, a metric) is run into a module store
with a real edit between each run: a parameter, a helper's code (once without changing
its output: early cutoff), the input file, an added step, a failing step. Each test then
compares two of those runs, through ``orch`` in a fresh process or in-process.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator.cli import main
from orchestrator.context import Context
from orchestrator.run_diff import diff_runs

from .conftest import ROOT, copy_store, orch_process

FLOW = '''\
from pathlib import Path

from orchestrator import Metrics, pipeline, step


def clean_text(s):
    return s.strip().lower()


@step
def load(path: Path) -> str:
    return path.read_text()


@step
def clean(raw: str) -> str:
    return clean_text(raw)


@step
def count(text: str) -> int:
    return len(text.split())


@step
def score(n: int, alpha: float) -> Metrics:
    return Metrics(acc=n * alpha)


@pipeline
def flow(path: Path = Path("data.txt"), alpha: float = 0.5):
    return score(count(clean(load(path))), alpha)
'''


def _orch(folder: Path, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "XDG_CONFIG_HOME": str(folder / "config")}
    return orch_process(["--store", str(store), *args], folder, env)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs of one project, each after one edit; their ids by what changed, and where they are."""
    folder = tmp_path_factory.mktemp("diff")
    store = folder / "store"
    flow = folder / "flow.py"
    flow.write_text(FLOW)
    (folder / "data.txt").write_text("Hello World foo\n")
    ids: dict[str, Any] = {"folder": folder, "store": store}

    def run(name: str, *args: str, ok: bool = True) -> None:
        result = _orch(folder, store, "run", "flow.py", "--json", *args)
        assert (result.returncode == 0) == ok, result.stderr
        ids[name] = json.loads(result.stdout)["run_id"]

    run("base")
    run("alpha", "-p", "alpha=0.1")
    _edit(flow, "s.strip().lower()", "s.lower().strip()")  # other code, the same output
    run("same_output", "-p", "alpha=0.1")
    _edit(flow, "s.lower().strip()", "s.lower().strip().replace('o', '0')")
    run("helper", "-p", "alpha=0.1")
    (folder / "data.txt").write_text("hello world foo bar\n")
    run("data", "-p", "alpha=0.1")
    _edit(flow, "    return score(count(clean(load(path))), alpha)",
          "    words = count(clean(load(path)))\n    report(words)\n    return score(words, alpha)")
    _edit(flow, "@pipeline", "@step\ndef report(n: int) -> str:\n    return f'{n} words'\n\n\n@pipeline")
    run("added", "-p", "alpha=0.1")
    _edit(flow, "    return len(text.split())", "    raise ValueError('no words today')")
    run("failed", "-p", "alpha=0.1", ok=False)
    return ids


def _diff(runs: dict[str, Any], a: str, b: str, *more: str) -> subprocess.CompletedProcess[str]:
    return _orch(runs["folder"], runs["store"], "diff", runs.get(a, a), runs.get(b, b), *more)


def _doc(runs: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    result = _diff(runs, a, b, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_parameter_change_names_the_parameter_the_step_and_the_metric(runs):
    result = _diff(runs, "base", "alpha")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"A run {runs['base']} of flow, succeeded")
    assert lines[1].startswith(f"B run {runs['alpha']} of flow, succeeded")
    assert lines[2:] == [
        "parameters", "  alpha: 0.5 → 0.1",
        "steps that differ", "  score: parameter `alpha` changed (0.5 → 0.1); outputs differ (out)",
        "metrics", "  acc: 1.5 → 0.30000000000000004 (-1.2)",
        "1 step differs: 1 parameter; 3 identical"]


def test_a_helpers_edit_is_named_and_an_unchanged_output_is_early_cutoff(runs):
    doc = _doc(runs, "alpha", "same_output")
    assert [(s["name"], s["reasons"], s["kinds"], s["outputs"]) for s in doc["steps"]] == [
        ("clean", ["code of `clean_text` changed"], ["code"], "same")]
    assert doc["summary"]["identical"] == 3 and doc["metrics"] == [] and doc["params"] == []
    assert "same outputs (early cutoff" in _diff(runs, "alpha", "same_output").stdout


def test_a_helpers_edit_that_changes_its_output_reaches_the_steps_after_it(runs):
    doc = _doc(runs, "same_output", "helper")
    assert [(s["name"], s["reasons"], s["outputs"]) for s in doc["steps"]] == [
        ("clean", ["code of `clean_text` changed"], "differ"),
        ("count", ["input `text` changed"], "same"),  # the same number of words: early cutoff
    ]
    assert doc["summary"]["kinds"] == {"code": 1, "input": 1}


def test_an_edited_input_file_is_named_with_its_path_though_a_run_only_reused_the_step(runs):
    """In run `helper`, load was cached: its key parts are those of the run that computed it."""
    doc = _doc(runs, "helper", "data")
    load = next(s for s in doc["steps"] if s["name"] == "load")
    assert (load["a_status"], load["b_status"]) == ("cached", "ran")
    assert load["reasons"] == [f"content of file `path` changed ({runs['folder'] / 'data.txt'})"]
    assert load["kinds"] == ["file"] and load["changed_outputs"] == ["out"]
    clean = next(s for s in doc["steps"] if s["name"] == "clean")
    assert clean["reasons"] == ["input `raw` changed"] and clean["kinds"] == ["input"]
    text = _diff(runs, "helper", "data").stdout.splitlines()
    assert text[-1] == "4 steps differ: 1 file, 3 input; 0 identical"


def test_an_added_step_is_only_in_b(runs):
    doc = _doc(runs, "data", "added")
    assert doc["only_in_b"] == [{"name": "report", "status": "ran", "note": None}]
    assert doc["only_in_a"] == [] and doc["steps"] == [] and doc["differs"] is True
    assert _diff(runs, "data", "added").stdout.splitlines()[-1] == "0 steps differ; 1 only in B; 4 identical"
    reverse = _doc(runs, "added", "data")
    assert [s["name"] for s in reverse["only_in_a"]] == ["report"]


def test_a_failed_run_names_the_failure_and_the_steps_that_never_ran(runs):
    doc = _doc(runs, "added", "failed")
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["count"]["reasons"] == ["its code changed", "failed in B: ValueError: no words today"]
    assert steps["count"]["kinds"] == ["code", "status"]
    assert steps["score"]["reasons"] == ["not run in B: skipped (upstream step 'count' failed)"]
    assert steps["score"]["kinds"] == ["not run"]
    assert doc["status"] == {"a": "succeeded", "b": "failed"}
    assert doc["metrics"] == [{"name": "acc", "a": 0.4, "b": None, "delta": None}]
    text = _diff(runs, "added", "failed").stdout
    assert "status\n  succeeded → failed (step 'count' failed after 1 attempt" in text


def test_the_same_run_twice_differs_in_nothing_and_exits_0_even_with_exit_code(runs):
    result = _diff(runs, "alpha", "alpha", "--exit-code")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "the same run twice: nothing differs"
    doc = _doc(runs, "alpha", "alpha")
    assert doc["differs"] is False and doc["summary"]["identical"] == 4


def test_exit_code_is_1_when_runs_differ_and_0_without_it(runs):
    assert _diff(runs, "base", "alpha").returncode == 0
    assert _diff(runs, "base", "alpha", "--exit-code").returncode == 1


def test_default_refs_are_the_newest_run_and_the_one_of_its_pipeline_before_it(runs, tmp_path):
    result = _orch(runs["folder"], runs["store"], "diff", "--json")
    doc = json.loads(result.stdout)
    assert (doc["a"]["run_id"], doc["b"]["run_id"]) == (runs["added"], runs["failed"])
    assert doc["b"]["ref"] == "latest"
    one = json.loads(_orch(runs["folder"], runs["store"], "diff", runs["data"], "--json").stdout)
    assert (one["a"]["run_id"], one["b"]["run_id"]) == (runs["data"], runs["failed"])
    # Another pipeline's run in between is passed over; its own first run has nothing before it.
    store = copy_store(runs["store"], tmp_path / "store")
    (runs["folder"] / "solo.py").write_text("from orchestrator import pipeline, step\n\n\n@step\ndef one() -> int:\n"
                                            "    return 1\n\n\n@pipeline\ndef solo():\n    return one()\n")
    assert _orch(runs["folder"], store, "run", "solo.py").returncode == 0
    first = _orch(runs["folder"], store, "diff")
    assert first.returncode == 2
    assert first.stderr.startswith("error: run ") and first.stderr.endswith(
        " is the first run of pipeline 'solo' in this store: nothing before it to compare with. Pass two runs, "
        "`orch diff A B` (see `orch runs`).\n")
    assert _orch(runs["folder"], store, "run", "flow.py").returncode == 1  # count still fails
    doc = json.loads(_orch(runs["folder"], store, "diff", "--json").stdout)
    assert doc["a"]["run_id"] == runs["failed"] and doc["b"]["pipeline"] == "flow" and doc["steps"] == []


def test_an_unknown_ref_is_one_line_and_exit_2(runs):
    result = _diff(runs, "base", "nosuchrun")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: no run 'nosuchrun' in this store. List runs with `orch runs`.\n"
    far = _diff(runs, "latest~99", "latest")
    assert far.returncode == 2
    assert far.stderr == ("error: there are 7 runs in this store, so no latest~99: latest~6 is the oldest. "
                          "See `orch runs`.\n")
    bad = _diff(runs, "latest~x", "latest")
    assert bad.returncode == 2 and "write latest~N with N a count of runs back" in bad.stderr
    assert "Traceback" not in result.stderr + far.stderr + bad.stderr


def test_latest_tilde_n_names_a_run_in_show_too(runs):
    result = _orch(runs["folder"], runs["store"], "show", "latest~6", "--json")
    assert json.loads(result.stdout)["run_id"] == runs["base"]


def test_runs_of_different_pipelines_say_so_first(runs, tmp_path):
    other = runs["folder"] / "other.py"
    other.write_text("from orchestrator import pipeline, step\n\n\n@step\ndef count(n: int) -> int:\n"
                     "    return n\n\n\n@pipeline\ndef other(n: int = 3):\n    return count(n)\n")
    store = copy_store(runs["store"], tmp_path / "store")
    result = _orch(runs["folder"], store, "run", "other.py", "--json")
    assert result.returncode == 0, result.stderr
    text = _orch(runs["folder"], store, "diff", runs["data"], "latest").stdout.splitlines()
    assert text[0].startswith("runs of different pipelines, 'flow' and 'other' (steps are matched by name)")
    assert "  count: " in text[text.index("steps that differ") + 1]
    assert text[-1] == "1 step differs: 1 code, 1 parameter, 1 input; 3 only in A; 0 identical"


def test_runs_recorded_without_key_parts_say_not_recorded(runs, tmp_path):
    """A store an older version wrote: key parts missing from its steps and cache rows."""
    store = copy_store(runs["store"], tmp_path / "store")
    with sqlite3.connect(store / "metadata.db") as db:
        db.execute("UPDATE steps SET key_parts=NULL")
        db.execute("UPDATE cache SET parts=NULL")
        db.execute("UPDATE runs SET packages=NULL WHERE run_id=?", (runs["base"],))
    db.close()
    result = _orch(runs["folder"], store, "diff", runs["base"], runs["alpha"])
    assert result.returncode == 0, result.stderr
    assert ("  score: its key changed; what it is made of is not recorded in A and B (a run made by an older "
            "version); outputs differ (out)") in result.stdout.splitlines()
    assert "  packages: not recorded → " in result.stdout
    assert result.stdout.splitlines()[-1] == "1 step differs: 1 not recorded; 3 identical"


def test_the_python_api_returns_what_json_prints(runs):
    found = orchestrator.diff(runs["base"], runs["alpha"], store=runs["store"])
    assert orchestrator.diff(store=runs["store"]).a.run_id == runs["added"]
    assert isinstance(found, orchestrator.RunDiff) and found.differs
    assert [(c.name, c.a, c.b) for c in found.params] == [("alpha", 0.5, 0.1)]
    assert found.steps[0].reasons == ("parameter `alpha` changed (0.5 → 0.1)",)
    assert found.summary() == "1 step differs: 1 parameter; 3 identical"
    assert found.to_json() == _doc(runs, "base", "alpha")
    with pytest.raises(orchestrator.UserError, match="no run 'zzz' in this store"):
        orchestrator.diff("zzz", store=runs["store"])


def test_the_json_keys_are_the_documented_ones(runs):
    doc = _doc(runs, "helper", "data")
    assert list(doc) == ["a", "b", "same_pipeline", "differs", "params", "environment", "packages", "only_in_a",
                         "only_in_b", "steps", "metrics", "status", "model", "summary"]
    assert list(doc["a"]) == ["ref", "run_id", "pipeline", "status", "started", "error", "model"]
    assert list(doc["steps"][0]) == ["name", "a_status", "b_status", "a_key", "b_key", "reasons", "kinds",
                                     "outputs", "changed_outputs"]
    params = _doc(runs, "base", "alpha")["params"]
    assert list(params[0]) == ["name", "a", "b", "fields"]
    assert list(doc["summary"]) == ["differ", "identical", "kinds", "only_in_a", "only_in_b", "text"]
    documented = (ROOT / "docs" / "cli.md").read_text().split("## `orch diff")[1].split("\n## ")[0]
    for key in [*doc, *doc["a"], *doc["steps"][0], *doc["summary"], *params[0]]:
        assert re.search(rf"[`{{ ]{key}[`,}}]", documented), key


def test_a_thousand_step_run_compares_reading_only_the_two_runs(tmp_path):
    """Parts are read for the steps that differ only: one changed step of 1,000 costs a few queries."""
    store = tmp_path / "store"
    ctx = Context.open(str(store), None, create=True)
    lineage = ctx.lineage
    parts = json.dumps({"code": "c", "code_parts": {}, "version": None, "params": {"k": "1"}, "inputs": {},
                        "values": {"k": 1}})
    changed = json.dumps({**json.loads(parts), "params": {"k": "2"}, "values": {"k": 2}})
    with lineage.transaction() as c:
        for run, started in (("a" * 12, 1.0), ("b" * 12, 2.0)):
            c.execute("INSERT INTO runs (run_id, pipeline, status, started) VALUES (?, 'big', 'succeeded', ?)",
                      (run, started))
            c.executemany("INSERT INTO steps (run_id, node, position, step, key, key_parts, status) "
                          "VALUES (?, ?, ?, 'f', ?, ?, 'ran')",
                          [(run, f"f_{i}", i, f"key{i}" if i or run == "a" * 12 else "other",
                            changed if not i and run != "a" * 12 else parts) for i in range(1000)])
    statements: list[str] = []
    lineage.conn.set_trace_callback(statements.append)
    found = diff_runs(lineage, "a" * 12, "b" * 12)
    lineage.conn.set_trace_callback(None)
    assert [(s.name, s.reasons) for s in found.steps] == [("f_0", ("parameter `k` changed (1 → 2)",))]
    assert found.identical == 999
    assert len(statements) < 20, statements


def test_two_model_versions_compare_their_runs_gates_and_metrics(tmp_path):
    from .test_registry import TINY

    folder = tmp_path
    (folder / "tiny.py").write_text(TINY)
    store = folder / "store"
    for args in ((), ("-p", "c=0")):
        result = _orch(folder, store, "run", "tiny.py", *args)
        assert result.returncode == 0, result.stderr
    result = _orch(folder, store, "diff", "tiny@1", "tiny@2", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["a"]["model"]["version"], doc["b"]["model"]["version"]) == (1, 2)
    assert doc["params"] == [{"name": "c", "a": 1.0, "b": 0.0, "fields": []}]
    changes = {c["name"]: c for c in doc["model"]}
    assert changes["version"] == {"name": "version", "a": 1, "b": 2}
    assert changes["gate"]["a"].startswith("promoted: no production version yet")
    assert changes["gate"]["b"].startswith("refused: accuracy 0.6250 vs production v1 0.7500")
    assert changes["metric accuracy"] == {"name": "metric accuracy", "a": 0.75, "b": 0.625, "delta": -0.125}
    # The run metrics registering records (model, gate) were listed again under metrics: said once, in model.
    assert [m["name"] for m in doc["metrics"]] == []
    text = _orch(folder, store, "diff", "tiny@1", "tiny@2").stdout
    assert text.startswith("A tiny v1, run ")
    assert "model\n  version: 1 → 2\n  gate: promoted: no production version yet (" in text
    assert "\nmetrics\n" not in text and "tiny@1 → tiny@2" not in text and text.count("gate: ") == 1
    # Compared as runs, not versions, the run metrics are the only place the model shows: kept.
    by_run = json.loads(_orch(folder, store, "diff", doc["a"]["run_id"], doc["b"]["run_id"], "--json").stdout)
    assert [m["name"] for m in by_run["metrics"]] == ["model", "gate"] and by_run["model"] == []
    assert " → refused: " in text
    unknown = _orch(folder, store, "diff", "tiny@9", "tiny@1")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: model 'tiny' has no version 9")
    # A model's bare name, as orch serve and orch monitor take it, is not a run: the line names the versions.
    bare = _orch(folder, store, "diff", "tiny", "latest")
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1, bare.stderr
    assert bare.stderr.startswith("error: 'tiny' is a model, not a run: name one of its versions, tiny@production")
    assert "(it has 1, 2)" in bare.stderr and "`orch diff tiny@1 tiny@latest`" in bare.stderr


CONFIGURED = '''\
from dataclasses import dataclass, field

from orchestrator import pipeline, step


@dataclass
class Optimizer:
    name: str = "adam-with-decoupled-weight-decay"
    beta: float = 0.9


@dataclass
class ModelConfig:
    n_estimators: int = 30
    max_depth: int = 5
    criterion: str = "gini"
    opt: Optimizer = field(default_factory=Optimizer)


@step
def fit(cfg: ModelConfig, hp: dict) -> str:
    return repr(cfg) + repr(hp)


@pipeline
def train(model_cfg: ModelConfig = ModelConfig(), hp: dict = {"lr": 0.1, "layers": [64, 32], "dropout": 0.25},
          seed: int = 0):
    return fit(model_cfg, hp)
'''


def test_a_config_parameter_names_the_fields_that_changed_as_the_steps_reason_does(tmp_path):
    """A config edited in --params conf/params.yml was two 150-character values to compare by eye."""
    (tmp_path / "train.py").write_text(CONFIGURED)
    (tmp_path / "params.yml").write_text("model_cfg:\n  n_estimators: 40\n  opt: {beta: 0.8}\n"
                                         "hp: {lr: 0.2, layers: [64, 32], dropout: 0.25}\nseed: 1\n")
    store = tmp_path / "store"
    for args in ((), ("--params", "params.yml")):
        result = _orch(tmp_path, store, "run", "train.py", *args)
        assert result.returncode == 0, result.stderr
    text = _orch(tmp_path, store, "diff").stdout.splitlines()
    params = text[text.index("parameters") + 1:text.index("steps that differ")]
    assert params == ["  model_cfg changed (n_estimators: 30 → 40, opt.beta: 0.9 → 0.8)",
                      "  hp changed (lr: 0.1 → 0.2)", "  seed: 0 → 1"]
    step = text[text.index("steps that differ") + 1]
    assert "parameter `cfg` changed (n_estimators: 30 → 40, opt.beta: 0.9 → 0.8)" in step
    doc = json.loads(_orch(tmp_path, store, "diff", "--json").stdout)
    by_name = {c["name"]: c for c in doc["params"]}
    assert by_name["model_cfg"]["fields"] == ["n_estimators: 30 → 40", "opt.beta: 0.9 → 0.8"]
    assert by_name["model_cfg"]["a"]["opt"] == {"name": "adam-with-decoupled-weight-decay", "beta": 0.9}
    assert by_name["hp"]["fields"] == ["lr: 0.1 → 0.2"] and by_name["hp"]["b"]["lr"] == 0.2
    assert by_name["seed"] == {"name": "seed", "a": 0, "b": 1, "fields": []}


def test_diff_in_process_prints_the_same_summary(runs, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(runs["store"]), "diff", runs["base"], runs["alpha"]])
    assert exited.value.code == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 step differs: 1 parameter; 3 identical"


def test_a_step_renamed_with_the_same_key_is_named_on_both_sides(runs, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.txt").write_text("hello world foo bar\n")
    (folder / "flow.py").write_text(FLOW.replace("score(count(", 'score(count.alias("count_words")('))
    store = tmp_path / "store"
    for text in (FLOW, FLOW.replace("score(count(", 'score(count.alias("count_words")(')):
        (folder / "flow.py").write_text(text)
        result = _orch(folder, store, "run", "flow.py")
        assert result.returncode == 0, result.stderr
    doc = json.loads(_orch(folder, store, "diff", "--json").stdout)
    assert doc["only_in_a"] == [{"name": "count", "status": "ran", "note": "the same computation (key) as "
                                 "'count_words' of the other run: renamed?"}]
    assert doc["only_in_b"][0]["name"] == "count_words" and "as 'count' of the other run" in doc["only_in_b"][0]["note"]
    assert doc["steps"] == []


def test_a_step_ref_is_refused_naming_the_commands_for_one_step(runs):
    result = _diff(runs, f"{runs['base']}:score", "latest")
    assert result.returncode == 2
    assert result.stderr == (f"error: orch diff compares two runs, not steps: pass run ids (`orch diff RUN_A RUN_B` "
                             f"gives each step's reason); for one step, `orch show {runs['base']}` or "
                             f"`orch lineage {runs['base']}:score`.\n")


def test_load_and_get_run_take_latest_tilde_n(runs, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(runs["folder"] / "config"))  # the key the runs signed with
    assert orchestrator.get_run("latest~6", store=runs["store"]).id == runs["base"]
    assert orchestrator.load("latest~5", store=runs["store"]) == orchestrator.get_run(
        runs["alpha"], store=runs["store"]).output()


def test_an_interrupted_run_names_the_steps_it_never_reached(runs, tmp_path):
    """A run stopped by Ctrl-C records no step it never started (the runner forgets them)."""
    store = copy_store(runs["store"], tmp_path / "store")
    with sqlite3.connect(store / "metadata.db") as db:
        db.execute("UPDATE runs SET status='interrupted', error=NULL WHERE run_id=?", (runs["alpha"],))
        db.execute("DELETE FROM steps WHERE run_id=? AND node IN ('count', 'score')", (runs["alpha"],))
    db.close()
    doc = json.loads(_orch(runs["folder"], store, "diff", runs["base"], runs["alpha"], "--json").stdout)
    note = "the other run (interrupted) stopped before it started, or its pipeline has no such step"
    assert doc["only_in_a"] == [{"name": "count", "status": "ran", "note": note},
                                {"name": "score", "status": "ran", "note": note}]
    assert doc["status"] == {"a": "succeeded", "b": "interrupted"} and doc["steps"] == []
    text = _orch(runs["folder"], store, "diff", runs["base"], runs["alpha"]).stdout.splitlines()
    assert text[-3:] == ["status", "  succeeded → interrupted", "0 steps differ; 2 only in A; 2 identical"]


def test_an_upgraded_library_is_named_for_the_run_and_for_the_step_that_uses_it(runs, tmp_path):
    """Python and numpy upgraded between two runs; a step whose code calls numpy records its version."""
    store = copy_store(runs["store"], tmp_path / "store")
    with sqlite3.connect(store / "metadata.db") as db:
        (packages,) = db.execute("SELECT packages FROM runs WHERE run_id=?", (runs["base"],)).fetchone()
        db.execute("UPDATE runs SET python='3.12.4', packages=? WHERE run_id=?",
                   (json.dumps({**json.loads(packages), "numpy": "0.1"}), runs["base"]))
        for run, version in ((runs["helper"], "1.26.4"), (runs["data"], "2.1.0")):
            (parts,) = db.execute("SELECT key_parts FROM steps WHERE run_id=? AND node='count'", (run,)).fetchone()
            parts = json.loads(parts)
            parts["code"] += version  # the code digest covers its parts
            parts["code_parts"]["pkg:numpy"] = version
            db.execute("UPDATE steps SET key_parts=? WHERE run_id=? AND node='count'", (json.dumps(parts), run))
    db.close()
    lines = _orch(runs["folder"], store, "diff", runs["base"], runs["alpha"]).stdout.splitlines()
    python = next(line for line in lines if line.startswith("  python: "))
    assert python.startswith("  python: 3.12.4 → ")
    assert any(line.startswith("  package numpy: 0.1 → ") for line in lines)
    doc = json.loads(_orch(runs["folder"], store, "diff", runs["helper"], runs["data"], "--json").stdout)
    count = next(s for s in doc["steps"] if s["name"] == "count")
    assert count["reasons"] == ["package numpy 1.26.4 → 2.1.0", "input `text` changed"]
    assert count["kinds"] == ["package", "input"]


def test_latest_tilde_n_on_a_store_with_one_run_or_none(tmp_path):
    from orchestrator.errors import NotFoundError

    lineage = Context.open(str(tmp_path / "store"), None, create=True).lineage
    with pytest.raises(NotFoundError, match=r"^there are no runs in this store yet\. Start one with `orch run FILE`\.$"):
        lineage.resolve_run("latest~1")
    with lineage.transaction() as c:
        c.execute("INSERT INTO runs (run_id, pipeline, status, started) VALUES ('ab12', 'p', 'succeeded', 1.0)")
    assert lineage.resolve_run("latest~0") == "ab12"
    with pytest.raises(NotFoundError, match=r"^there is 1 run in this store, so no latest~1: latest is the only one"):
        lineage.resolve_run("latest~1")


def test_damaged_records_are_named_damaged_not_compared_as_empty(runs, tmp_path):
    """A hand-edited key parts or parameters value: the diff says damaged (orch doctor), never a traceback."""
    store = copy_store(runs["store"], tmp_path / "store")
    with sqlite3.connect(store / "metadata.db") as db:
        db.execute("UPDATE steps SET key_parts='{bad' WHERE node='score'")
        db.execute("UPDATE cache SET parts='{bad' WHERE node='score'")
        db.execute("UPDATE runs SET params='[1' WHERE run_id=?", (runs["alpha"],))
    db.close()
    result = _orch(runs["folder"], store, "diff", runs["base"], runs["alpha"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  params: recorded → damaged (`orch doctor` names it)" in lines
    assert ("  score: its key changed; what it is made of is damaged in A and B (`orch doctor` names it); "
            "outputs differ (out)") in lines


@pytest.mark.parametrize("older", ["no origin", "only the cache index"])
def test_a_cached_step_recorded_before_origins_finds_its_parts_by_key(runs, tmp_path, older):
    """Cached step runs recorded without the step run they reused; at worst only the cache index has the parts."""
    store = copy_store(runs["store"], tmp_path / "store")
    with sqlite3.connect(store / "metadata.db") as db:
        db.execute("UPDATE steps SET origin=NULL")
        if older == "only the cache index":
            db.execute("UPDATE steps SET key_parts=NULL WHERE node='load'")
    db.close()
    doc = json.loads(_orch(runs["folder"], store, "diff", runs["helper"], runs["data"], "--json").stdout)
    load = next(s for s in doc["steps"] if s["name"] == "load")
    assert load["a_status"] == "cached"
    assert load["reasons"] == [f"content of file `path` changed ({runs['folder'] / 'data.txt'})"]


def test_a_step_forced_again_that_made_another_output_differs_though_its_key_is_the_same(tmp_path):
    """`fit` reads what its key cannot see (an environment variable): forced again with --rerun it made
    another model. Saying it identical left `evaluate: input model changed` with no step that changed it."""
    from orchestrator import pipeline, step

    @step
    def fit(n: int) -> str:
        return os.environ.get("ORCH_TEST_TAG", "") * n

    @step
    def evaluate(model: str) -> int:
        return len(model)

    @pipeline
    def training(n: int = 2):
        return evaluate(fit(n))

    store = str(tmp_path / "store")
    os.environ["ORCH_TEST_TAG"] = "x"
    try:
        first = training.run(store=store)
        os.environ["ORCH_TEST_TAG"] = "yy"
        forced = training.run(store=store, rerun=["fit"])
        again = training.run(store=store, no_cache=True)  # the same key, the same output as forced's
    finally:
        del os.environ["ORCH_TEST_TAG"]
    assert (first.output(), forced.output(), again.output()) == (2, 4, 4)

    found = orchestrator.diff(first.id, forced.id, store=store)
    fit_change = next(c for c in found.steps if c.name == "fit")
    assert fit_change.a_key == fit_change.b_key and fit_change.kinds == ("output",)
    assert fit_change.outputs == "differ" and fit_change.changed_outputs == ("out",)
    assert fit_change.reasons == ("the same key made another output, computed again in B (forced with "
                                  "rerun=): the step is not deterministic, or reads what its key cannot see "
                                  "(a clock, an environment variable, a file not passed as a parameter)",)
    assert found.summary() == "2 steps differ: 1 input, 1 output; 0 identical"
    assert orchestrator.diff(forced.id, again.id, store=store).summary() == "0 steps differ; 2 identical"
