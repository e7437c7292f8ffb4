"""The model server on models trained on the kinds of columns users bring: booleans next to numbers and categories.

A tiny pipeline (a logistic regression on a number, a boolean and a category, one-hot encoded with
``handle_unknown="ignore"``) is run once into a module store; the app is driven with FastAPI's
TestClient, without a port.
"""

from __future__ import annotations

import textwrap
import warnings

import pandas as pd
import pytest

from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.registry import load_model

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
                              model_digest(model), eval_data=frame, reference=features)


    @pipeline
    def flags():
        return package()
''')


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.delenv("ORCH_SIGNING_KEY", raising=False)
        (base / "flags.py").write_text(FLAGS)
        run = load_pipeline(str(base / "flags.py")).run(store=str(base / "store"))
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


@pytest.mark.parametrize("value", ["yes", 1, 0.0, [True]])
def test_a_boolean_column_names_what_it_takes(client, value):
    answer = client.post("/predict", json=[{"x": 1.0, "cosigner": value, "colour": "red"}])
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("record 0: column cosigner must be true or false, got ")
