"""Serving models as users build them: boolean columns, and code of their own pipeline file inside the model.

Two tiny pipelines are run once into a module store: ``flags`` (a logistic regression on a number,
a boolean and a category, one-hot encoded with ``handle_unknown="ignore"``) and ``custom`` (a
``FunctionTransformer`` of a function the pipeline file defines). The app is driven with FastAPI's
TestClient, without a port; loading elsewhere runs in a fresh process started in another folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import pandas as pd
import pytest

from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.registry import load_model

from .conftest import ROOT

FLAGS = textwrap.dedent('''
    """A model over a number, a boolean and a category; the boolean decides most of the label."""
    import pandas as pd

    from orchestrator import pipeline, step
    from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


    @step
    def package() -> ModelCandidate:
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder

        n = 60
        frame = pd.DataFrame({"x": [float(i % 7) for i in range(n)], "cosigner": [i % 3 == 0 for i in range(n)],
                              "colour": [("red", "blue")[i % 2] for i in range(n)]})
        frame["y"] = (frame["cosigner"] | (frame["x"] > 5)).astype(int)
        features = frame[["x", "cosigner", "colour"]]
        model = Pipeline([
            ("features", ColumnTransformer([("flags", OneHotEncoder(handle_unknown="ignore"), ["cosigner", "colour"])],
                                           remainder="passthrough")),
            ("model", LogisticRegression(C=10.0)),
        ]).fit(features, frame["y"])
        return ModelCandidate("flags", model, "classification", describe_schema(features), "y",
                              evaluate("classification", model, features, frame["y"]), "accuracy", 0.0,
                              model_digest(model), eval_data=frame, reference=features, key="loan_id")


    @pipeline
    def flags():
        return package()
''')


CUSTOM = textwrap.dedent('''
    """A model whose first stage is a function of this file: pickled by reference to this module."""
    import pandas as pd

    from orchestrator import pipeline, step
    from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


    def doubled(frame):
        return frame * 2


    @step
    def package() -> ModelCandidate:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        frame = pd.DataFrame({"x": [i / 3 for i in range(60)], "y": [int(i >= 30) for i in range(60)]})
        model = make_pipeline(FunctionTransformer(doubled), LogisticRegression()).fit(frame[["x"]], frame["y"])
        return ModelCandidate("custom", model, "classification", describe_schema(frame[["x"]]), "y",
                              evaluate("classification", model, frame[["x"]], frame["y"]), "accuracy", 0.0,
                              model_digest(model), eval_data=frame, reference=frame[["x"]])


    @pipeline
    def custom():
        return package()
''')


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.delenv("ORCH_SIGNING_KEY", raising=False)
        (base / "project").mkdir()
        for name, text in (("served_flags", FLAGS), ("served_custom", CUSTOM)):
            (base / "project" / f"{name}.py").write_text(text)
            run = load_pipeline(str(base / "project" / f"{name}.py")).run(store=str(base / "store"))
            assert run.status == "succeeded", run.error
        yield base


@pytest.fixture(scope="module")
def client(built):
    pytest.importorskip("fastapi")
    with warnings.catch_warnings():  # starlette's note about httpx versions, not ours to fix
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from orchestrator.serve import create_app

    with TestClient(create_app(Context.open(built / "store"), "flags", log_requests=False)) as c:
        yield c


def test_a_boolean_column_takes_json_booleans_and_predicts_like_the_model(client, built):
    """A boolean feature refused JSON true ("must be a string"), and took "True", which the one-hot
    encoder did not know: every request was silently scored as if the column were missing."""
    rows = [{"x": 1.0, "cosigner": True, "colour": "red"}, {"x": 1.0, "cosigner": False, "colour": "red"}]
    here = load_model("flags", store=built / "store").predict(pd.DataFrame(rows))
    assert here["prediction"] == [1, 0]
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200 and answer.json()["probability"] == pytest.approx(here["probability"])
    as_text = client.post("/predict", json=[{**r, "cosigner": str(r["cosigner"])} for r in rows])
    assert as_text.status_code == 200 and as_text.json()["probability"] == pytest.approx(here["probability"])
    assert client.post("/predict", json=[{**rows[0], "cosigner": None}]).status_code == 200


def test_the_answer_says_which_class_the_probability_is_of(client):
    """A binary classifier's probability is of its second class; the answer did not say so, and
    {"prediction": ["fraud"], "probability": [0.00003]} (the probability of "ok") read as a contradiction."""
    answer = client.post("/predict", json=[{"x": 6.0, "cosigner": True, "colour": "red"}]).json()
    assert answer["prediction"] == [1] and answer["probability"][0] > 0.5 and answer["probability_of"] == 1
    described = client.get("/model").json()
    assert described["classes"] == [0, 1] and described["probability_of"] == 1


def test_a_category_the_model_never_saw_is_answered_with_a_warning_naming_it(client):
    """"Red" for "red" (or a new kind of customer) was scored as unknown without a word: only a later
    `orch monitor` named it. The answer still comes, with a warning per value (a close known one named)."""
    rows = [{"x": 1.0, "cosigner": True, "colour": "Red"}, {"x": 1.0, "cosigner": True, "colour": "red"},
            {"x": 1.0, "cosigner": False, "colour": "green"}]
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200
    doc = answer.json()
    assert len(doc["prediction"]) == 3
    assert doc["warnings"] == [
        "record 0: colour 'Red' was not seen in training (did you mean 'red'?); the model scored it as unknown",
        "record 2: colour 'green' was not seen in training; the model scored it as unknown"]
    known = client.post("/predict", json=rows[1:2]).json()
    assert "warnings" not in known
    many = client.post("/predict", json=[{**rows[0], "colour": f"c{i}"} for i in range(8)]).json()
    assert len(many["warnings"]) == 6 and many["warnings"][-1] == "and 3 more values not seen in training"


def test_a_category_written_in_another_case_is_pointed_at_its_known_spelling(client):
    """"WEB" for "web" got no hint: the close match was case-sensitive, where model names ignore case."""
    rows = [{"x": 1.0, "cosigner": True, "colour": "RED"}, {"x": 1.0, "cosigner": True, "colour": "BLEU"}]
    doc = client.post("/predict", json=rows).json()
    assert doc["warnings"] == [
        "record 0: colour 'RED' was not seen in training (did you mean 'red'?); the model scored it as unknown",
        "record 1: colour 'BLEU' was not seen in training (did you mean 'blue'?); the model scored it as unknown"]


def test_rows_posted_with_the_label_column_are_answered_without_it(client):
    """Rows straight from a labelled table carry the label ("y"): refused as an unknown column, they
    made every such request a 422, while load_model().predict ignores extra columns."""
    rows = [{"x": 1.0, "cosigner": True, "colour": "red", "y": 1}, {"x": 6.0, "cosigner": False, "colour": "blue"}]
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["prediction"] == client.post("/predict", json=[{k: v for k, v in r.items() if k != "y"}
                                                              for r in rows]).json()["prediction"]
    assert doc["warnings"] == ["column y is the model's label, not a feature: ignored"]
    unknown = client.post("/predict", json=[{**rows[0], "z": 1}])
    assert unknown.status_code == 422 and "unknown column z" in unknown.json()["detail"]


def test_rows_posted_with_the_key_column_are_answered_with_their_keys(client):
    """Rows posted from the training table carry their id (the pipeline's KEY): each request was a 422
    'unknown column loan_id'. The key is not a feature; the answer gives it back to match rows with."""
    rows = [{"loan_id": "L-7", "x": 1.0, "cosigner": True, "colour": "red"},
            {"x": 6.0, "cosigner": False, "colour": "blue"}]
    doc = client.post("/predict", json=rows).json()
    without = client.post("/predict", json=[{k: v for k, v in r.items() if k != "loan_id"} for r in rows]).json()
    assert doc["keys"] == ["L-7", None] and doc["prediction"] == without["prediction"] and "warnings" not in doc
    assert "keys" not in without and client.get("/model").json()["key"] == "loan_id"


def test_a_key_that_is_a_feature_or_the_label_is_refused_where_the_candidate_is_made():
    from sklearn.linear_model import LogisticRegression

    from orchestrator.registry import InvalidCandidateError, ModelCandidate, describe_schema, model_digest

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    for key in ("x", "y"):
        with pytest.raises(InvalidCandidateError, match=f"key '{key}' must name a column that is neither a feature"):
            ModelCandidate("m", model, "classification", describe_schema(frame[["x"]]), "y", {"accuracy": 1.0},
                           "accuracy", 0.0, model_digest(model), key=key)


@pytest.mark.parametrize("value", ["yes", 1, 0.0, [True]])
def test_a_boolean_column_names_what_it_takes(client, value):
    answer = client.post("/predict", json=[{"x": 1.0, "cosigner": value, "colour": "red"}])
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("record 0: column cosigner must be true or false, got ")


@pytest.mark.parametrize("body", [[], {"records": []}, "x"])
def test_a_body_without_records_shows_this_models_columns(client, body):
    """The example was the demo's `{"age": 42, ...}` whatever model was served."""
    answer = client.post("/predict", json=body)
    assert answer.status_code == 422
    assert answer.json()["detail"] == ('send a non-empty JSON array of records, e.g. [{"x": 1.0, "cosigner": true, '
                                       '...}], or {"records": [...]}')


def _elsewhere(built, *args: str, path: str = "") -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh process started outside the pipeline's folder."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path) if p),
           "XDG_CONFIG_HOME": str(built / "config")}
    env.pop("ORCH_SIGNING_KEY", None)
    return subprocess.run([sys.executable, *args], cwd=built, env=env, capture_output=True, text=True, timeout=120)


def test_a_model_using_pipeline_code_names_the_folder_to_import_when_served_elsewhere(built):
    """It failed with exit 1 and 'Check that library versions match', though no library differed: the
    model's FunctionTransformer refers to the pipeline file's module, which `orch serve` cannot import."""
    done = _elsewhere(built, "-m", "orchestrator", "--store", str(built / "store"), "serve", "custom", "--port", "0")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: model custom@1 cannot be loaded in this process: it uses code from the "
                               "module 'served_custom'")
    assert f"PYTHONPATH={built / 'project'} orch ..." in lines[0] and "library versions" not in lines[0]
    code = f"from orchestrator.registry import load_model; print(load_model('custom', store={str(built / 'store')!r})" \
           ".predict(__import__('pandas').DataFrame({'x': [1.0, 18.0]}))['prediction'])"
    assert "cannot be loaded in this process" in _elsewhere(built, "-c", code).stderr
    fixed = _elsewhere(built, "-c", code, path=str(built / "project"))
    assert fixed.returncode == 0 and fixed.stdout.strip() == "[0, 1]", fixed.stderr


def test_a_missing_package_is_not_taken_for_pipeline_code(tmp_path):
    """Only a module that is a file or folder of the pipeline's folder is called the user's code; a package
    missing from the serving environment is named as one to install."""
    from orchestrator.registry import _unimportable_code

    (tmp_path / "features.py").write_text("")
    mine = _unimportable_code(ModuleNotFoundError("No module named 'features'", name="features"), tmp_path)
    assert mine is not None and "code from the module 'features' of your pipeline's folder" in mine
    assert f"PYTHONPATH={tmp_path} orch ..." in mine
    theirs = _unimportable_code(ModuleNotFoundError("No module named 'xgboost'", name="xgboost.sklearn"), tmp_path)
    assert theirs is not None and theirs.startswith("it needs the module 'xgboost.sklearn', which is not installed "
                                                    "here. Install it (pip install xgboost)")
    assert _unimportable_code(ValueError("unsupported pickle protocol"), tmp_path) is None


def test_a_model_stored_under_another_scikit_learn_names_that_release(tmp_path):
    """A model registered under another scikit-learn (a module it moved) is not a package to install: it is
    installed here, in another version, and the run that registered the model recorded which."""
    import sklearn

    from orchestrator.registry import _unimportable_code

    moved = ModuleNotFoundError("No module named 'sklearn.linear_model._moved'", name="sklearn.linear_model._moved")
    advice = _unimportable_code(moved, tmp_path, lambda: {"scikit-learn": "9.1.0"})
    assert advice == ("it was stored under scikit-learn 9.1.0, and this process has scikit-learn "
                      f"{sklearn.__version__}, which has no module 'sklearn.linear_model._moved'. Install "
                      "scikit-learn 9.1.0 here (pip install 'scikit-learn==9.1.0'), or run the pipeline again "
                      "here to store it anew.")


def _logging_client(built, **options: Any):
    """A client of a server of ``flags`` that logs its requests (``client`` does not); ``options`` go
    to ``create_app`` (``segment_rows=1`` seals and indexes each request's segment as it is answered)."""
    with warnings.catch_warnings():  # starlette's note about httpx versions, not ours to fix
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from orchestrator.serve import create_app

    return TestClient(create_app(Context.open(built / "store"), "flags", **options))


def _indexed(built) -> set[str]:
    context = Context.open(built / "store")
    return {row[0] for row in context.lineage.conn.execute("SELECT path FROM request_segments WHERE name='flags'")}


def _wait_for(condition, seconds: float = 30.0) -> bool:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_held_database_lock_neither_holds_answers_nor_stops_the_request_log(built, caplog):
    """Another process holding the metadata database's write lock (a sqlite3 shell with a transaction
    open) held every answer until it let go or for 60 s; after that timeout, no request the server
    answered was ever indexed again, so `orch monitor` never saw them."""
    import sqlite3
    import threading

    pytest.importorskip("fastapi")
    caplog.set_level("WARNING", logger="orchestrator.serve")
    row = {"x": 1.0, "cosigner": True, "colour": "red"}
    with _logging_client(built, segment_rows=1) as client:
        before = _indexed(built)
        holder = sqlite3.connect(Context.open(built / "store").lineage.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        answers: list[int] = []
        asking = threading.Thread(target=lambda: answers.extend(
            client.post("/predict", json=[row]).status_code for _ in range(3)), daemon=True)
        try:
            asking.start()
            asking.join(30)  # a hang guard, far below the 60 s the lock held each answer before
            answered_while_locked = list(answers)
            indexed_while_locked = _indexed(built)
            said_behind = _wait_for(lambda: "not indexed for `orch monitor` yet" in caplog.text)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            asking.join(90)  # leave no request inside the client when it closes
        assert answered_while_locked == [200, 200, 200]
        assert indexed_while_locked == before  # written to disk, waiting for the lock
        assert said_behind and "another process holds the write lock" in caplog.text
        assert _wait_for(lambda: len(_indexed(built)) == len(before) + 3)
        assert _wait_for(lambda: "the request index caught up" in caplog.text)
        assert caplog.text.count("not indexed for `orch monitor` yet") == 1
        assert client.post("/predict", json=[row]).status_code == 200
        assert len(_indexed(built)) == len(before) + 4  # indexed in passing again
    from orchestrator.request_log import read_requests

    frame, _ = read_requests(Context.open(built / "store"), "flags")
    assert len(frame) >= 4 and frame.tail(4)["colour"].tolist() == ["red"] * 4


def test_requests_a_stopped_server_did_not_index_are_indexed_by_the_next(built):
    """A server killed between writing a request's segment and indexing it left the request out of
    every `orch monitor` check for good."""
    from orchestrator.request_log import read_requests, write_segment

    pytest.importorskip("fastapi")
    context = Context.open(built / "store")
    segment = write_segment(context.root, "flags", 1, [{"x": 2.0, "cosigner": False, "colour": "blue"}],
                            {"prediction": [0], "probability": [0.2]})
    assert segment.path not in _indexed(built)
    with _logging_client(built):
        assert segment.path in _indexed(built)
    frame, scores = read_requests(Context.open(built / "store"), "flags", version=1, limit=1)
    assert frame.to_dict("records") == [{"x": 2.0, "cosigner": False, "colour": "blue"}] and scores == [0.2]


@pytest.fixture()
def loopback(built):
    """``flags`` served by uvicorn on a free loopback port, in a thread; yields the port."""
    import threading

    uvicorn = pytest.importorskip("uvicorn")
    from orchestrator.serve import bind, create_app

    app = create_app(Context.open(built / "store"), "flags", max_body=4096, log_requests=False)
    sockets = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    try:
        assert _wait_for(lambda: server.started)
        yield sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        for sock in sockets:
            sock.close()


def _post(port: int, body: bytes | Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    import http.client
    import json

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json", **headers})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_gets_its_413_on_a_connection_the_client_closes(loopback, chunked):
    """Python's urllib (and any client that sends Connection: close) got 'Connection reset by peer' for a
    batch over the size cap, not the 413 naming the limit: the server closed the socket with the
    unread body in it."""
    record = b'{"x": 1.0, "cosigner": true, "colour": "red"}, '
    body = b"[" + record * 200_000 + b"{}]"  # 9 MB, well over what the socket buffers hold
    sent = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    status, answer = _post(loopback, sent, {"Connection": "close"})
    assert status == 413
    assert "4096 bytes" in answer["detail"] and "smaller requests" in answer["detail"]
    assert _post(loopback, b'[{"x": 1.0, "cosigner": true, "colour": "red"}]', {})[0] == 200


NAN_METRIC = textwrap.dedent('''
    """A regression whose candidate carries a metric that could not be measured (NaN)."""
    import pandas as pd

    from orchestrator import pipeline, step
    from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


    @step
    def package() -> ModelCandidate:
        from sklearn.linear_model import LinearRegression

        frame = pd.DataFrame({"x": [float(i) for i in range(80)], "y": [2.0 * i + i % 3 for i in range(80)]})
        model = LinearRegression().fit(frame[["x"]], frame["y"])
        metrics = {**evaluate("regression", model, frame[["x"]], frame["y"]), "r2_holdout": float("nan")}
        return ModelCandidate("unmeasured", model, "regression", describe_schema(frame[["x"]]), "y", metrics,
                              "rmse", 0.0, model_digest(model), eval_data=frame, reference=frame[["x"]])


    @pipeline
    def unmeasured():
        return package()
''')


def _strict(text: str) -> Any:
    import json

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_metric_that_is_nan_is_null_in_model_and_json_outputs(tmp_path, monkeypatch):
    """A candidate metric of NaN made GET /model a 500 ('Out of range float values are not JSON compliant'),
    and `orch models ls --json` / `models show --json` / `lineage --format json` print NaN, which no strict
    JSON reader (jq, a browser) takes."""
    pytest.importorskip("fastapi")
    from click.testing import CliRunner

    from orchestrator.cli import cli
    from orchestrator.serve import create_app

    with warnings.catch_warnings():  # starlette's note about httpx versions, not ours to fix
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "unmeasured.py").write_text(NAN_METRIC)
    assert load_pipeline(str(tmp_path / "unmeasured.py")).run(store=str(tmp_path / "store")).status == "succeeded"
    app = create_app(Context.open(tmp_path / "store"), "unmeasured", log_requests=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        described = client.get("/model")
        assert described.status_code == 200
        assert _strict(described.text)["metrics"]["r2_holdout"] is None
        monkeypatch.setattr(app.state.loaded, "predict", lambda frame: {"prediction": [float("nan"), 1.5]})
        answer = client.post("/predict", json=[{"x": 1.0}, {"x": 2.0}])
        assert answer.status_code == 200 and _strict(answer.text)["prediction"] == [None, 1.5]
    for args in (["models", "ls", "--json"], ["models", "show", "unmeasured@1", "--json"],
                 ["lineage", "unmeasured@1", "--format", "json"]):
        done = CliRunner().invoke(cli, ["--store", str(tmp_path / "store"), *args])
        assert done.exit_code == 0, done.output
        assert "r2_holdout" in done.output and _strict(done.output) is not None


def test_a_request_whose_prediction_is_nan_is_still_logged(tmp_path):
    """The log refused the NaN (``allow_nan=False``), so the request was dropped from monitoring."""
    from orchestrator.request_log import index_segments, read_requests, write_segment

    context = Context.open(tmp_path / "store")
    segment = write_segment(context.root, "m", 1, [{"x": 1.0}, {"x": 2.0}], {"prediction": [float("nan"), 2.5]})
    assert '"prediction": {"prediction": null}' in (context.root / segment.path).read_text()
    index_segments(context.lineage, [segment])
    frame, scores = read_requests(context, "m")
    assert frame["x"].tolist() == [1.0, 2.0] and scores[1] == 2.5 and scores[0] != scores[0]


def test_an_empty_body_and_curl_s_form_are_named_with_the_fix(client):
    """`curl -d '[...]' URL` (no -H) got only 'sent as application/x-www-form-urlencoded', and an empty
    body 'not valid JSON: Expecting value: line 1 column 1 (char 0)'."""
    empty = client.post("/predict", content=b"", headers={"Content-Type": "application/json"})
    assert empty.status_code == 400
    assert empty.json()["detail"] == 'the body is empty; send a JSON array of records, e.g. [{"x": 1.0, "cosigner": true, ...}]'
    form = client.post("/predict", content=b'[{"x": 1.0}]',
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and "-H 'Content-Type: application/json'" in form.json()["detail"]


def test_an_unknown_column_that_looks_like_a_missing_one_is_pointed_at(client):
    """A client that spelled a column its own way ("Colour", "x_") got two unrelated lists to compare."""
    answer = client.post("/predict", json=[{"x": 1.0, "cosigner": True, "Colour": "red"}])
    assert answer.status_code == 422
    assert answer.json()["detail"] == ("record 0: missing column colour; record 0: unknown column Colour "
                                       "(did you mean colour for Colour?)")
    typo = client.post("/predict", json=[{"x": 1.0, "cosignr": True, "colour": "red"}]).json()["detail"]
    assert typo.endswith("unknown column cosignr (did you mean cosigner for cosignr?)")
    unrelated = client.post("/predict", json=[{"x": 1.0, "cosigner": True, "zzz": "red"}]).json()["detail"]
    assert "did you mean" not in unrelated


def test_an_archived_read_only_store_serves_and_says_once_that_requests_are_not_logged(built, tmp_path, monkeypatch,
                                                                                       capsys, caplog):
    """A read-only store served, but logged 'request not logged: Read-only file system' at every request."""
    import errno
    import logging
    from pathlib import Path

    from .conftest import copy_store

    archived = copy_store(built / "store", tmp_path / "store")
    real_mkdir = Path.mkdir

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        if archived in self.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from orchestrator.serve import create_app

    with caplog.at_level(logging.WARNING, logger="orchestrator.serve"):
        with TestClient(create_app(Context.open(archived), "flags", segment_rows=1)) as c:
            for _ in range(3):
                response = c.post("/predict", json=[{"x": 0.0, "cosigner": True, "colour": "red"}])
                assert response.status_code == 200, response.text
    err = capsys.readouterr().err
    assert err.count("warning: requests to flags are answered but not logged: cannot create ") == 1, err
    assert "(Read-only file system)" in err and "orch --store COPY serve" in err
    assert not [r for r in caplog.records if "request not logged" in r.getMessage()]


def _segments(built) -> tuple[list[str], list[str]]:
    """The sealed and the open segment files of ``flags``."""
    folder = built / "store" / "serving" / "flags"
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return [n for n in names if n.endswith(".jsonl")], [n for n in names if n.endswith(".open")]


def test_answered_requests_share_a_segment_sealed_by_size_and_at_stop(built):
    """Each answered request was a file and an index row of its own: 30 million of each in a week at
    50 requests a second. They are appended to one open segment, which `orch monitor` reads at once,
    sealed and indexed as one when it is full and when the server stops."""
    from orchestrator.request_log import read_requests

    pytest.importorskip("fastapi")
    row = {"x": 3.0, "cosigner": False, "colour": "blue"}
    sealed_before, _ = _segments(built)
    indexed_before = _indexed(built)
    with _logging_client(built, segment_rows=10) as client:
        for _ in range(25):
            assert client.post("/predict", json=[row]).status_code == 200
        sealed, opened = _segments(built)
        assert len(sealed) == len(sealed_before) + 2 and len(opened) == 1  # 10 + 10 sealed, 5 open
        assert _wait_for(lambda: len(_indexed(built)) == len(indexed_before) + 2)
        frame, _ = read_requests(Context.open(built / "store"), "flags", limit=25)
        assert frame.to_dict("records") == [row] * 25  # the open segment's requests too
    sealed, opened = _segments(built)
    assert len(sealed) == len(sealed_before) + 3 and opened == []
    rows = Context.open(built / "store").lineage.conn.execute(
        "SELECT rows FROM request_segments WHERE name='flags' ORDER BY created DESC LIMIT 3").fetchall()
    assert sorted(r[0] for r in rows) == [5, 10, 10] and len(_indexed(built)) == len(indexed_before) + 3


def test_a_segment_is_sealed_once_a_request_comes_its_age_after_its_first(built, monkeypatch):
    pytest.importorskip("fastapi")
    from orchestrator import request_writer

    # Sealing by a request, not by the idle server's timer (its own test): on a slow machine the timer
    # would otherwise seal the last open segment before the count below.
    monkeypatch.setattr(request_writer, "timer_seconds", lambda seconds: 3600.0)
    sealed_before, _ = _segments(built)
    with _logging_client(built, segment_seconds=0.0) as client:  # every request finds its segment too old
        for _ in range(3):
            assert client.post("/predict", json=[{"x": 1.0, "cosigner": True, "colour": "red"}]).status_code == 200
        assert len(_segments(built)[0]) == len(sealed_before) + 2
    assert len(_segments(built)[0]) == len(sealed_before) + 3


def test_a_failed_write_leaves_no_half_request_in_the_segment(tmp_path, monkeypatch):
    """A disk that filled mid-write left half a line, which the next request's line joined: both lost."""
    import errno

    from orchestrator import request_writer
    from orchestrator.request_log import read_requests

    context = Context.open(tmp_path / "store")
    writer = request_writer.RequestWriter(context.root, "m", 1, lambda segment: None)
    writer.append([{"x": 1.0}], {"prediction": [1]})
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        monkeypatch.setattr(request_writer.os, "write", full)
        return real_write(fd, bytes(data)[:len(data) // 2])

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(request_writer.os, "write", half_then_full)
    with pytest.raises(OSError, match="No space"):
        writer.append([{"x": 2.0}], {"prediction": [2]})
    monkeypatch.setattr(request_writer.os, "write", real_write)
    writer.append([{"x": 3.0}], {"prediction": [3]})
    assert writer.open_path is not None and writer.open_path.read_text().count("\n") == 2
    frame, scores = read_requests(context, "m")
    assert frame["x"].tolist() == [1.0, 3.0] and scores == [1.0, 3.0]


def _serve_process(built) -> tuple[subprocess.Popen[str], int]:
    """``orch serve flags --port 0`` in a child process, answering; returns it and its port."""
    import re
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(built / "config")}
    env.pop("ORCH_SIGNING_KEY", None)
    server = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(built / "store"), "serve", "flags",
                               "--port", "0"], cwd=built, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    said = ""
    while not (found := re.search(r"http://127\.0\.0\.1:(\d+) ", said)) and server.poll() is None:
        said = server.stderr.readline()
    assert found, "the server did not say where it serves"
    port = int(found.group(1))
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if _post(port, b'[{"x": 0.0, "cosigner": true, "colour": "red"}]', {})[0] == 200:
                return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise AssertionError("the server never answered")


def test_a_killed_server_loses_no_answered_request_and_a_stopped_one_seals_them(built):
    """A kill -9 or SIGTERM must not lose what was answered: the killed server's open segment is read
    as it is, left to it while it lives, and sealed and indexed (once) by the next server on the store;
    SIGTERM seals and indexes before the server exits."""
    import signal

    from orchestrator.request_log import read_requests, seal_abandoned

    pytest.importorskip("uvicorn")
    before = len(read_requests(Context.open(built / "store"), "flags")[0])
    row = b'[{"x": 4.0, "cosigner": false, "colour": "blue"}]'
    killed, port = _serve_process(built)
    try:
        assert all(_post(port, row, {})[0] == 200 for _ in range(4))
        assert seal_abandoned(built / "store", "flags") == 0  # alive: its segment is not taken from it
    finally:
        killed.kill()
        killed.wait(30)
    (opened,) = _segments(built)[1]
    with open(built / "store" / "serving" / "flags" / opened, "a") as f:
        f.write('{"at": 1, "version": 1, "features": {"x": 9')  # the line the kill cut short
    assert len(read_requests(Context.open(built / "store"), "flags")[0]) == before + 5  # 1 + 4, torn line left
    stopped, port = _serve_process(built)  # seals and indexes what the killed one left
    try:
        assert opened not in _segments(built)[1] and len(_segments(built)[1]) == 1  # its own only
        assert _post(port, row, {})[0] == 200
    finally:
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(30) in (0, -signal.SIGTERM)  # uvicorn raises the signal again once it has stopped
    assert _segments(built)[1] == []
    frame, _ = read_requests(Context.open(built / "store"), "flags")
    red, blue = {"x": 0.0, "cosigner": True, "colour": "red"}, {"x": 4.0, "cosigner": False, "colour": "blue"}
    assert len(frame) == before + 7  # each answered request once: none lost, none read twice
    assert frame.tail(7).to_dict("records") == [red, blue, blue, blue, blue, red, blue]
    unindexed = [n for n in _segments(built)[0] if f"serving/flags/{n}" not in _indexed(built)]
    assert unindexed == []


def test_a_served_request_is_logged_with_its_key_for_labels_to_join(built):
    """The answer gave the key back but the request log dropped it, so outcomes arriving later as
    (loan_id, label) could not be joined to what was served. Each line keeps its record's key."""
    import json

    pytest.importorskip("fastapi")
    with _logging_client(built) as client:
        rows = [{"loan_id": "L-42", "x": 2.0, "cosigner": True, "colour": "red"},
                {"x": 1.0, "cosigner": False, "colour": "blue"}]
        assert client.post("/predict", json=rows).json()["keys"] == ["L-42", None]
    sealed, _ = _segments(built)
    newest = max(sealed)  # stems start with the time they were opened
    lines = [json.loads(line) for line in (built / "store" / "serving" / "flags" / newest).read_text().splitlines()]
    assert lines[-2]["key"] == "L-42" and "loan_id" not in lines[-2]["features"]
    assert "key" not in lines[-1]  # a record without one: no key, as lines logged before keys were


def test_an_idle_server_seals_its_open_segment_on_age_without_another_request(built):
    """Sealing on age was checked when a request came, so an idle server's last requests stayed in an
    open segment, unindexed, until the next one. A timer in the server's lifespan seals it."""
    pytest.importorskip("fastapi")
    sealed_before, _ = _segments(built)
    indexed_before = _indexed(built)
    with _logging_client(built, segment_seconds=0.5) as client:
        assert client.post("/predict", json=[{"x": 1.0, "cosigner": True, "colour": "red"}]).status_code == 200
        assert _segments(built)[1]  # open, as answered
        assert _wait_for(lambda: len(_segments(built)[0]) == len(sealed_before) + 1 and not _segments(built)[1])
        assert _wait_for(lambda: len(_indexed(built)) == len(indexed_before) + 1)
    assert len(_segments(built)[0]) == len(sealed_before) + 1  # nothing left open for the stop to seal
