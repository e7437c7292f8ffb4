"""The ML lifecycle pipeline end to end: registry and gate, portability, serving, monitoring, validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.registry import Registry, load_model

from .conftest import copy_store, orch_process

ROOT = Path(__file__).parent.parent
PIPELINE = ROOT / "pipelines" / "lifecycle.py"
ROWS = 800
sys.path.insert(0, str(ROOT / "pipelines"))  # the demo's data source, as the pipeline file imports it


def orch(store: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return orch_process(["--store", str(store), *args], cwd or ROOT, env)


@pytest.fixture(scope="module")
def lifecycle():
    return load_pipeline(str(PIPELINE))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, lifecycle):
    """One store with three runs: a weak model (v1), a better one (v2), a worse one (v3)."""
    from datasource import customers, write_table

    base = tmp_path_factory.mktemp("lifecycle")
    store, data = base / "store", base / "customers.csv"
    write_table(customers(ROWS, seed=0), data)
    write_table(customers(400, seed=1), base / "clean.parquet")
    write_table(customers(400, seed=2, drift=1.0), base / "drifted.parquet")
    weak = {"model": "boosting", "max_depth": [1], "learning_rate": 0.001}
    settings = [weak, {"C": [1e-3]}, {**weak, "learning_rate": 0.002}]
    runs = [lifecycle.run(store=str(store), data=data, margin=0.002, **kw) for kw in settings]
    return {"store": store, "data": data, "base": base, "runs": runs}


def test_pipeline_runs_end_to_end_and_records_metrics(trained):
    run = trained["runs"][1]
    assert run.status == "succeeded"
    assert set(run.steps) >= {"ingest", "validate", "require_valid", "split", "train_candidate", "select_best",
                              "assess", "package"}
    assert {"accuracy", "f1", "roc_auc", "balanced_accuracy"} <= set(run.metrics)
    assert run.metrics["model"] == "churn@2"
    shown = json.loads(orch(trained["store"], "runs", "--json").stdout)
    assert [r["metrics"]["roc_auc"] for r in shown[:3]] == [r.metrics["roc_auc"] for r in reversed(trained["runs"])]
    assert shown[1]["metrics"]["roc_auc"] > 0.7


def test_what_was_built_from_the_data_reaches_the_registered_versions(trained):
    shown = orch(trained["store"], "lineage", str(trained["data"]), "--downstream", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    models = [m for node in json.loads(shown.stdout)["nodes"] for m in node.get("models", [])]
    assert sorted((m["version"], m["production"]) for m in models) == [(1, False), (2, True), (3, False)]
    tree = orch(trained["store"], "lineage", str(trained["data"]), "--downstream").stdout
    assert "→ model churn@2 (production)" in tree and "→ model churn@3" in tree


def test_gate_promotes_a_better_model_and_refuses_a_worse_one(trained):
    registry = Registry(Context.open(trained["store"]).lineage)
    versions = {v["version"]: v for v in registry.versions("churn")}
    assert versions[1]["gate"]["promoted"] and versions[1]["gate"]["reason"].startswith("no production version yet")
    assert versions[2]["gate"]["promoted"]
    assert not versions[3]["gate"]["promoted"] and "does not beat" in versions[3]["gate"]["reason"]
    assert registry.production("churn") == 2
    assert "not promoted" in trained["runs"][2].metrics["gate"]


def test_same_model_again_registers_no_new_version(trained, lifecycle):
    run = lifecycle.run(store=str(trained["store"]), data=trained["data"], C=[1e-3], margin=0.002)
    assert all(s.status == "cached" for s in run.steps.values())
    assert run.metrics["model"] == "churn@2"
    assert "already registered" in run.metrics["gate"]
    assert len(Registry(Context.open(trained["store"]).lineage).versions("churn")) == 3


def test_models_cli_ls_show_promote_rollback(trained, tmp_path):
    store = tmp_path / "store"
    copy_store(trained["store"], store)
    listed = json.loads(orch(store, "models", "ls", "--json").stdout)
    assert listed == [{"name": "churn", "versions": 3, "latest": 3, "production": 2,
                       "metrics": listed[0]["metrics"]}] and "roc_auc" in listed[0]["metrics"]
    shown = orch(store, "models", "show", "churn@production")
    assert shown.returncode == 0 and "churn v2 (production)" in shown.stdout and "customers.csv" in shown.stdout
    assert orch(store, "models", "promote", "churn@3").returncode == 0
    assert Registry(Context.open(store).lineage).production("churn") == 3
    back = orch(store, "models", "rollback", "churn")
    assert back.returncode == 0 and "from v3 to v2" in back.stdout
    back = orch(store, "models", "rollback", "churn")
    assert "from v2 to v1" in back.stdout
    assert Registry(Context.open(store).lineage).production("churn") == 1
    for args, text in [(("models", "show", "nope"), "no model 'nope'"),
                       (("models", "show", "churn@9"), "has no version 9"),
                       (("models", "show", "churn@x1"), "is not a model reference"),
                       (("models", "rollback", "churn"), "no production version before v1")]:
        bad = orch(store, *args)
        assert bad.returncode == 2 and text in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_lineage_of_production_model_is_an_audit_trail(trained):
    doc = json.loads(orch(trained["store"], "lineage", "churn@production", "--format", "json").stdout)
    model = doc["model"]
    assert model["version"] == 2 and model["stage"] == "production"
    assert model["training_data"] == [{"path": str(trained["data"]), "digest": model["training_data"][0]["digest"]}]
    assert model["run"]["user"] is not None and model["run"]["host"] and "git_commit" in model["run"]
    assert model["promoted"]["gate"]["promoted"] and model["promoted"]["at"]
    assert {s["step"] for s in model["steps"]} >= {"ingest", "train_candidate", "package"}
    assert all(s["code"] for s in model["steps"])
    assert any(n["kind"] == "file" for n in doc["nodes"])
    # The diagrams name the model too (their root is the step that packaged it).
    for fmt, drawn in (("dot", '"model" [label="model churn@2 (production)"'),
                       ("mermaid", 'model[/"model churn@2 (production)"/]')):
        out = orch(trained["store"], "lineage", "churn@production", "--format", fmt).stdout
        assert drawn in out and "registered as" in out, out[-400:]


def test_registered_model_loads_without_the_pipelines_folder(trained, tmp_path):
    batch = pd.read_parquet(trained["base"] / "clean.parquet").head(20)
    batch.to_parquet(tmp_path / "batch.parquet")
    code = (
        "import sys, json, pandas as pd\n"
        "from orchestrator.registry import load_model\n"
        f"m = load_model('churn@production', store={str(trained['store'])!r})\n"
        "out = m.predict(pd.read_parquet('batch.parquet'))\n"
        "assert not any(k in sys.modules for k in ('lifecycle', 'datasource', 'expectations'))\n"
        "print(json.dumps(out))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package only
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    here = load_model("churn@production", store=trained["store"]).predict(batch)
    assert json.loads(done.stdout) == here


@pytest.fixture(scope="module")
def client(trained):
    pytest.importorskip("fastapi")
    import warnings

    with warnings.catch_warnings():  # starlette's note about httpx versions, not ours to fix
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from orchestrator.serve import create_app

    app = create_app(Context.open(trained["store"]), "churn@production", max_body=4096)
    with TestClient(app) as c:
        yield c


def test_server_predicts_like_the_model_in_process(client, trained):
    batch = pd.read_parquet(trained["base"] / "clean.parquet").head(10)
    features = [f["name"] for f in client.get("/model").json()["features"]]
    records = json.loads(batch[features].to_json(orient="records"))
    answer = client.post("/predict", json=records)
    assert answer.status_code == 200
    here = load_model("churn@production", store=trained["store"]).predict(batch)
    assert answer.json()["prediction"] == here["prediction"]
    assert answer.json()["probability"] == pytest.approx(here["probability"])
    info = client.get("/model").json()
    assert info["version"] == 2 and info["lineage"]["command"] == "orch lineage churn@2"
    assert client.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize(("body", "status", "text"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[]", 422, "non-empty JSON array"),
    (b'[{"age": NaN}]', 422, "NaN"),
    (b"[1, 2]", 422, "JSON object"),
    (json.dumps([{"age": "forty"}]).encode(), 422, "missing columns"),
    (b"x" * 5000, 413, "limit"),
])
def test_server_rejects_malformed_requests_and_stays_up(client, body, status, text):
    answer = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status and text in answer.json()["detail"]
    assert client.get("/health").status_code == 200


def test_server_caps_a_chunked_body_without_content_length(client):
    answer = client.post("/predict", content=iter([b"[" + b" " * 3000, b" " * 3000 + b"]"]))
    assert answer.status_code == 413
    assert client.get("/health").status_code == 200


def test_server_names_the_bad_column(client):
    features = [f for f in client.get("/model").json()["features"]]
    record = {f["name"]: (1.0 if f["kind"] == "number" else f["categories"][0]) for f in features}
    bad = client.post("/predict", json=[{**record, "age": "old"}])
    assert bad.status_code == 422 and "column age must be a number" in bad.json()["detail"]
    bad = client.post("/predict", json=[{**record, "contract": 3}])
    assert bad.status_code == 422 and "column contract must be a string" in bad.json()["detail"]
    bad = client.post("/predict", json=[{**record, "surprise": 1}])
    assert bad.status_code == 422 and "unknown column surprise" in bad.json()["detail"]
    assert client.post("/predict", json=[{**record, "age": None}]).status_code == 200


def test_served_requests_are_logged_for_monitoring(client, trained):
    from orchestrator.request_log import read_requests

    # Its own requests: with the module's tests split over processes (pytest-xdist), the others may not run here.
    batch = pd.read_parquet(trained["base"] / "clean.parquet").head(10)
    features = [f["name"] for f in client.get("/model").json()["features"]]
    assert client.post("/predict", json=json.loads(batch[features].to_json(orient="records"))).status_code == 200
    frame, scores = read_requests(Context.open(trained["store"]), "churn")
    assert len(frame) >= 10 and len(scores) == len(frame)
    done = orch(trained["store"], "monitor", "churn", "--json")
    doc = json.loads(done.stdout)
    assert doc["source"].startswith("served requests") and Path(doc["report_html"]).exists()


def test_monitor_flags_the_drifted_batch_and_not_the_clean_one(trained, tmp_path):
    store = tmp_path / "store"
    copy_store(trained["store"], store)
    clean = orch(store, "monitor", "churn", "--batch", str(trained["base"] / "clean.parquet"))
    assert clean.returncode == 0, clean.stderr
    drifted = orch(store, "monitor", "churn", "--batch", str(trained["base"] / "drifted.parquet"))
    assert drifted.returncode == 1 and "alert" in drifted.stdout
    html = sorted((store / "reports" / "churn").glob("*.html"))[-1].read_text()
    assert "<svg" in html and "<script" not in html
    history = orch(store, "monitor", "churn", "--history", "--json")
    rows = json.loads(history.stdout)
    assert [r["alert"] for r in rows][-2:] == [False, True] and history.returncode == 1
    assert orch(store, "monitor", "nope").returncode == 2
    assert orch(store, "monitor", "churn", "--batch", "missing.csv").returncode == 2


@pytest.mark.slow
def test_no_false_alarm_on_fresh_samples_of_the_same_distribution(trained):
    from datasource import customers

    from orchestrator.monitor import compare

    candidate = load_model("churn@production", store=trained["store"]).candidate
    alerts = [compare(candidate, customers(500, seed=seed)).alert for seed in range(10, 30)]
    assert sum(alerts) <= 1, alerts  # the thresholds aim at well under 5% false alarms
    assert compare(candidate, customers(500, seed=99, drift=1.0)).alert


def test_monitor_step_records_drift_through_the_driver(trained, lifecycle):
    store = str(trained["store"])
    batch = trained["base"] / "drifted.parquet"
    run = lifecycle.run(store=store, data=trained["data"], C=[1e-3], margin=0.002, monitor_batch=batch)
    assert run.status == "succeeded" and run.metrics[f"drift_batch {batch}"].startswith("alert")
    rows = Context.open(store).lineage.conn.execute(
        "SELECT status, version FROM drift_checks WHERE run_id=?", (run.id,)).fetchall()
    assert rows == [("alert", 2)]


def test_validation_failure_stops_the_run_with_a_report(tmp_path):
    from datasource import customers, write_table

    frame = customers(300, seed=0)
    frame.loc[:5, "age"] = 500
    frame.loc[:40, "contract"] = "lifetime"
    frame.loc[10, "customer_id"] = frame.loc[11, "customer_id"]
    bad = write_table(frame, tmp_path / "bad.csv")
    store = tmp_path / "store"
    done = orch(store, "run", str(PIPELINE), "-p", f"data={bad}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "3 of" in done.stderr and "expectations failed" in done.stderr
    assert "age: range" in done.stderr and "contract: categories" in done.stderr and "customer_id: unique" in done.stderr
    shown = json.loads(orch(store, "show", "latest", "--json").stdout)
    # the command to see the report names this run, not a RUN_ID to look up first
    assert f"The full report is the output of step 'validate': `orch show {shown['run_id']}`" in done.stderr
    steps = {s["name"]: s for s in shown["steps"]}
    assert steps["validate"]["status"] == "ran" and steps["validate"]["outputs"]
    report = Context.open(store).load(steps["validate"]["outputs"][0]["hash"])
    assert report["passed"] is False and report["failed"] == 3
    assert steps["require_valid"]["status"] == "failed" and steps["package"]["status"] == "skipped"


@pytest.mark.slow
def test_real_server_on_loopback(trained):
    """`orch serve` under uvicorn in a subprocess: health, a prediction, a 4xx, then a clean stop."""
    pytest.importorskip("uvicorn")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "pipelines" / "serving_check.py"), "churn",
                           "--store", str(trained["store"])], cwd=trained["base"], env=env,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "POST /predict 200" in done.stdout and "malformed request 422" in done.stdout


def test_gate_on_a_regression_metric_prefers_lower_errors():
    from sklearn.linear_model import LinearRegression

    from orchestrator.registry import ModelCandidate, describe_schema, evaluate, judge, model_digest

    rng = __import__("numpy").random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "g": rng.choice(["a", "b"], 300)})
    frame["y"] = 3 * frame["x"] + rng.normal(scale=0.1, size=300)
    good = LinearRegression().fit(frame[["x"]], frame["y"])
    bad = LinearRegression().fit(frame[["x"]], rng.normal(size=300))

    def offer(model, margin=0.0):
        metrics = evaluate("regression", model, frame[["x"]], frame["y"])
        return ModelCandidate("reg", model, "regression", describe_schema(frame[["x"]]), "y", metrics, "rmse",
                              margin, model_digest(model), eval_data=frame)

    assert set(offer(good).metrics) == {"rmse", "mae", "r2"}
    assert judge(offer(good), offer(bad), 1).promoted
    refused = judge(offer(bad), offer(good), 1)
    assert not refused.promoted and "does not beat" in refused.reason
    assert not judge(offer(good, margin=10.0), offer(bad), 1).promoted
    schema = describe_schema(frame[["x", "g"]])
    assert [(f["name"], f["kind"]) for f in schema] == [("x", "number"), ("g", "category")]
    assert schema[1]["categories"] == ["a", "b"]


def test_gc_keeps_every_registered_model_version(trained, lifecycle, tmp_path):
    from orchestrator.maintenance import collect_garbage

    store = tmp_path / "store"
    lifecycle.run(store=str(store), data=trained["data"], C=[1e-3])
    lifecycle.run(store=str(store), data=trained["data"], model="boosting", max_depth=[1], learning_rate=0.001)
    removed = collect_garbage(Context.open(store), keep_last=0, dry_run=False).removed
    assert removed  # the runs' other artifacts go
    assert load_model("churn@1", store=store).version == 1
    assert load_model("churn@2", store=store).version == 2


def test_a_deleted_model_artifact_is_restored_by_running_again(trained, lifecycle, tmp_path):
    from orchestrator.errors import NotFoundError

    store = tmp_path / "store"
    lifecycle.run(store=str(store), data=trained["data"], C=[1e-3])
    context = Context.open(store)
    digest = context.lineage.row("SELECT digest FROM model_versions WHERE version=1")["digest"]
    context.store.delete(digest)
    context.lineage.delete_artifacts([digest])
    with pytest.raises(NotFoundError, match="is missing from the store; re-run the pipeline that made it"):
        load_model("churn@1", store=store)
    again = lifecycle.run(store=str(store), data=trained["data"], C=[1e-3])
    assert again.metrics["model"] == "churn@1"
    assert load_model("churn@1", store=store).version == 1


def test_an_artifact_deleted_by_hand_gets_a_hint_that_does_not_blame_gc(trained, lifecycle, tmp_path):
    """Only the object file goes (`rm`, or `orch cache verify --repair` of a damaged one): the record stays."""
    pytest.importorskip("fastapi")
    from orchestrator.errors import NotFoundError
    from orchestrator.serve import create_app

    store = tmp_path / "store"
    lifecycle.run(store=str(store), data=trained["data"], C=[1e-3])
    context = Context.open(store)
    row = context.lineage.row("SELECT digest, run_id FROM model_versions WHERE version=1")
    context.store.delete(row["digest"])
    with pytest.raises(NotFoundError) as gone:
        create_app(context, "churn@1")  # what `orch serve churn@1` reports
    message = str(gone.value)
    assert f"model churn@1: its artifact {row['digest']} is missing from the store" in message
    assert f"re-run the pipeline that made it (run {row['run_id']}" in message and "orch doctor" in message
    assert "gc" not in message and "\n" not in message
    again = lifecycle.run(store=str(store), data=trained["data"], C=[1e-3])
    assert again.status == "succeeded" and again.metrics["model"] == "churn@1"
    assert load_model("churn@1", store=store).version == 1


@pytest.mark.parametrize(("param", "text"), [
    ({"metric": "bogus"}, "metric 'bogus' is not measured for classification; use one of accuracy, f1, roc_auc"),
    ({"margin": -0.01}, "margin -0.01 is negative"),
    ({"margin": float("nan")}, "margin nan is not a finite number"),
    # A misspelled model trained logistic regressions silently; an empty grid failed in select_best.
    ({"model": "boostng"}, "model 'boostng' is not one of logistic, boosting. Did you mean 'boosting'"),
    ({"C": []}, "of model 'logistic' is empty; give at least one value"),
    ({"model": "boosting", "max_depth": []}, "max_depth=.. of model 'boosting' is empty"),
    # A test share of 0 or 1.5 failed step split, after ingest and validation, with sklearn's message.
    ({"test_size": 1.5}, "test_size 1.5 is not between 0 and 1: it is the share of rows held out for testing"),
    ({"test_size": 0.0}, "test_size 0 is not between 0 and 1"),
    # A name the registry refuses failed step package, after every candidate had trained.
    ({"model_name": "churn v2"}, "model name 'churn v2' is not usable: use letters, digits, '_', '-' and '.', "
                                 "starting with a letter or digit"),
    # A hyperparameter scikit-learn refuses failed every train_candidate with InvalidParameterError, after
    # ingest, validation and the split.
    ({"C": [0]}, "C=[0] of model 'logistic' holds 0, which is not a number above 0 (C is the inverse of the "
                 "regularization strength). Pass e.g. -p 'C=[0.1, 1.0, 10.0]'."),
    ({"C": [-1, 1]}, "C=[-1, 1] of model 'logistic' holds -1, which is not a number above 0"),
    ({"C": ["a", 1, True]}, 'C=["a", 1, true] of model \'logistic\' holds "a" and true, which are not numbers above 0'),
    ({"model": "boosting", "learning_rate": 0}, "learning_rate=0 of model 'boosting' is not a number above 0 "
                                                "(learning_rate is how much each tree corrects the ones before it). "
                                                "Pass e.g. -p learning_rate=0.1."),
    ({"model": "boosting", "learning_rate": -1}, "learning_rate=-1 of model 'boosting' is not a number above 0"),
    ({"model": "boosting", "max_depth": [0]}, "max_depth=[0] of model 'boosting' holds 0, which is not a whole number "
                                              "of 1 or more, or null for no limit (max_depth is how deep each tree "
                                              "grows). Pass e.g. -p 'max_depth=[3, 6]'."),
    ({"model": "boosting", "max_depth": [1.5, 3.0]}, "max_depth=[1.5, 3.0] of model 'boosting' holds 1.5 and 3.0 "
                                                     "(write 3), which are not whole numbers"),
    ({"model": "boosting", "max_depth": [0], "learning_rate": 0}, "holds 0, which .*; learning_rate=0 of model"),
])
def test_lifecycle_refuses_a_bad_metric_or_margin_before_any_step_runs(lifecycle, tmp_path, param, text):
    """Used to fail in train_candidate with KeyError: 'bogus', or to ignore a negative margin."""
    from orchestrator.errors import ParameterError

    store = tmp_path / "store"
    with pytest.raises(ParameterError, match=text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace("?", r"\?").replace(".*;", "[^;]*;")):
        lifecycle.run(store=str(store), data=tmp_path / "never-read.csv", **param)
    assert not (tmp_path / "never-read.csv").exists()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_early_check_of_each_hyperparameter_takes_what_scikit_learn_takes(monkeypatch, task):
    """The values check_search lets through are the ones the candidates' estimators take, and it refuses the others:
    a value it let through would fail every train_candidate again, after ingest, validation and the split."""
    import lifecycle
    import numpy as np

    monkeypatch.setattr(lifecycle, "TASK", task)
    for model, hyperparameters in lifecycle.HYPERPARAMETERS.items():
        defaults = {"model": model, "C": 1.0, "max_depth": 3, "learning_rate": 0.1}
        for h in hyperparameters:
            assert not h.accepts(True)  # JSON true is no hyperparameter, though scikit-learn takes it as C=1
            for value in (0, -1, 1, 2, 0.5, 1.5, 3.0, 1e-9, 1e6, None, "a", [1], float("nan"), np.int64(3),
                          np.float64(0.5), np.int64(0)):  # numpy's, as a Python caller may pass them
                try:  # scikit-learn's own check of its parameters, which fit makes first
                    with np.errstate(divide="ignore"):  # the ridge's 1/C of numpy's 0 is inf, which it refuses
                        lifecycle._estimator({**defaults, h.name: value}, seed=0)._validate_params()
                    taken = True
                except Exception:  # noqa: BLE001 - InvalidParameterError, or 1/C of a C of 0 for the ridge
                    taken = False
                assert h.accepts(value) is taken, (task, model, h.name, value)


def test_a_hyperparameter_the_estimator_refuses_is_one_line_and_exit_2_before_any_step_runs(tmp_path, capsys):
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "store"), "run", str(PIPELINE), "-p", "model=boosting", "-p",
              "learning_rate=0", "-p", "max_depth=[0]"])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1 and not out, (out, err)  # no step ran
    assert err.startswith("error: max_depth=[0] of model 'boosting' holds 0") and "learning_rate=0" in err


def test_a_monitor_batch_of_another_table_is_refused_before_any_step_runs(lifecycle, tmp_path):
    """It trained, gated and registered first; then the drift check compared no column at all."""
    from orchestrator.errors import ParameterError

    batch, data = tmp_path / "loans.csv", tmp_path / "customers.csv"
    pd.DataFrame({"loan_id": [1, 2], "amount": [5.0, 6.0]}).to_csv(batch, index=False)
    data.write_text("customer_id,age\n1,40\n")  # never read: the check comes first
    with pytest.raises(ParameterError) as refused:
        lifecycle.run(store=str(tmp_path / "store"), data=data, monitor_batch=batch)
    assert str(refused.value) == (
        f"monitor batch {batch} has none of the model's feature columns (age, tenure_months, monthly_charges, "
        "total_charges, support_calls, contract, payment_method, region); its columns are loan_id, amount. "
        "Pass a batch of the same table to -p monitor_batch.")


def test_the_monitor_step_refuses_a_batch_with_none_of_the_models_columns(trained):
    """An edited copy's own monitor call (a batch read in the body) compared nothing, as 'insufficient data'."""
    from orchestrator.errors import UserError

    lifecycle_module = sys.modules[load_pipeline(str(PIPELINE)).fn.__module__]
    candidate = load_model("churn@production", store=trained["store"]).candidate
    with pytest.raises(UserError, match=r"^batch loans.csv has none of the feature columns of 'churn' \(age, "):
        lifecycle_module.monitor(candidate, pd.DataFrame({"loan_id": [1], "amount": [5.0]}), "batch loans.csv")


def test_orch_run_with_a_bad_metric_is_one_line_and_exit_2(tmp_path):
    done = orch(tmp_path / "store", "run", str(PIPELINE), "-p", "metric=bogus", "-p", f"data={tmp_path / 'x.csv'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: metric 'bogus' is not measured for classification; use one of accuracy, f1, roc_auc, "
        "balanced_accuracy."]


def test_rows_with_your_own_data_file_says_it_has_no_effect(tmp_path):
    """`-p rows=100` with `-p data=mine.csv` planned and ran on all of mine.csv without a word."""
    from datasource import customers, write_table

    data = tmp_path / "mine.csv"
    write_table(customers(200, seed=0), data)
    planned = orch(tmp_path / "store", "plan", str(PIPELINE), "-p", f"data={data}", "-p", "rows=100")
    assert planned.returncode == 0, planned.stderr
    assert planned.stderr.splitlines()[0].startswith(
        f"warning: rows=100 has no effect: it sizes the generated demo data, and {data} is your own file, "
        "used as it is. Drop rows, or leave out data to run on the demo data. (lifecycle.py:")
    quiet = orch(tmp_path / "store", "plan", str(PIPELINE), "-p", f"data={data}")
    assert quiet.returncode == 0 and "rows=" not in quiet.stderr


def test_the_serving_check_makes_records_for_a_model_of_your_own_data():
    """`serving_check.py MODEL` posted demo customers to any model: one of your own data stopped it with a
    KeyError traceback naming its columns."""
    from serving_check import _records

    features = [{"name": "x1", "kind": "number", "dtype": "float64"},
                {"name": "color", "kind": "category", "dtype": "str", "categories": ["blue", "red"]}]
    assert _records(features, 3) == [{"x1": 0.0, "color": "blue"}, {"x1": 1.0, "color": "red"},
                                     {"x1": 2.0, "color": "blue"}]
    demo = [{"name": "age", "kind": "number"}, {"name": "contract", "kind": "category", "categories": ["x"]}]
    assert all(r["contract"] in ("month-to-month", "one-year", "two-year") for r in _records(demo, 5))


def test_the_summary_of_an_unknown_model_is_one_line(trained, monkeypatch, capsys):
    """`summary.py MODEL` of a model the store lacks ended in a NotFoundError traceback."""
    import summary

    monkeypatch.setattr(sys, "argv", ["summary.py", "CHURN", "--store", str(trained["store"])])
    with pytest.raises(SystemExit) as exited:
        summary.main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.strip() == "error: no model 'CHURN' in this store. Did you mean " \
        "'churn'? Models: churn."


def test_a_validation_set_without_the_rare_class_says_why_roc_auc_is_missing():
    """1% positives and few rows: a validation split with no positive failed with KeyError: 'roc_auc'."""
    from datasource import customers
    from lifecycle import CATEGORICAL, LABEL, NUMERIC, train_candidate

    frame = customers(200, seed=0)[[*NUMERIC, *CATEGORICAL, LABEL]]
    valid = frame[frame[LABEL] == 0].head(40)
    with pytest.raises(ValueError) as refused:
        train_candidate({"model": "logistic", "C": 1.0}, frame, valid, 0, "roc_auc")
    assert str(refused.value) == ("roc_auc cannot be measured on the 40 validation rows, which hold 1 of the "
                                  "label's classes: give more rows, or -p metric=accuracy or f1.")


def test_a_grid_given_as_a_numpy_array_is_checked_like_a_list():
    """`lifecycle.plan(C=np.array([0.5, 1.0]))` failed the early check with numpy's 'truth value of an array
    is ambiguous', and an empty array slipped past the empty-grid check the same way."""
    import lifecycle
    import numpy as np

    from orchestrator.errors import ParameterError

    lifecycle.check_search("logistic", {"C": np.array([0.5, 1.0])})
    with pytest.raises(ParameterError, match=r"the candidate grid C=\[\] of model 'logistic' is empty"):
        lifecycle.check_search("logistic", {"C": np.array([])})
    with pytest.raises(ParameterError, match=r"C=\[0\.0, 1\.0\] of model 'logistic' holds 0"):
        lifecycle.check_search("logistic", {"C": np.array([0.0, 1.0])})
    with pytest.raises(ParameterError, match=r"max_depth=\[0, 3\] of model 'boosting' holds 0"):
        lifecycle.check_search("boosting", {"max_depth": np.array([0, 3]), "learning_rate": 0.1})
