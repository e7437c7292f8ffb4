"""A model that takes a raw date and time column (its own pipeline derives the date parts): schema, serving, monitoring.

A user's scikit-learn ``Pipeline`` may take a ``datetime64`` column as it is, and a transformer of its
own turns it into numbers. Such a column was described as a category of every training timestamp:
``GET /model`` listed them all, every new date was "not seen in training", and the monitor compared
timestamps as categories (identical data drifted, dates ten years on did not). The store is built
once per module by a tiny pipeline written to tmp; the server is driven with FastAPI's TestClient.
"""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.registry import describe_schema

TIMED = textwrap.dedent('''
    """Orders over 2024: whether one is large depends on the hour it was placed and on x."""
    import numpy as np
    import pandas as pd

    from orchestrator import pipeline, step
    from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


    def date_parts(frame):
        """The hour and the month of ``ordered_at``, and ``x`` as it is."""
        when = pd.to_datetime(frame["ordered_at"])
        return np.column_stack([when.dt.hour, when.dt.month, frame["x"]]).astype(float)


    def orders(rows, seed):
        rng = np.random.default_rng(seed)
        start = pd.Timestamp("2024-01-01").value // 10**9
        seconds = rng.integers(start, start + 365 * 86400, rows)
        frame = pd.DataFrame({"ordered_at": pd.to_datetime(seconds, unit="s").astype("datetime64[us]"),
                              "x": rng.normal(size=rows)})
        frame["y"] = ((frame["ordered_at"].dt.hour >= 12) ^ (frame["x"] > 1)).astype(int)
        return frame


    @step
    def package() -> ModelCandidate:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        train, held_out = orders(1500, 0), orders(500, 1)
        features = ["ordered_at", "x"]
        model = make_pipeline(FunctionTransformer(date_parts), LogisticRegression()).fit(train[features],
                                                                                         train["y"])
        return ModelCandidate("orders", model, "classification", describe_schema(train[features]), "y",
                              evaluate("classification", model, held_out[features], held_out["y"]), "accuracy",
                              0.0, model_digest(model), eval_data=held_out, reference=held_out[features])


    @pipeline
    def timed():
        return package()
''')


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("times")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.delenv("ORCH_SIGNING_KEY", raising=False)
        (base / "timed_orders.py").write_text(TIMED)
        pipeline = load_pipeline(str(base / "timed_orders.py"))
        run = pipeline.run(store=str(base / "store"))
        assert run.status == "succeeded", run.error
        yield {"base": base, "store": base / "store", "module": pipeline}


@pytest.fixture(scope="module")
def client(built):
    pytest.importorskip("fastapi")
    with warnings.catch_warnings():  # starlette's note about httpx versions, not ours to fix
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from orchestrator.serve import create_app

    with TestClient(create_app(Context.open(built["store"]), "orders", log_requests=False)) as c:
        yield c


def _orders(rows: int, seed: int) -> pd.DataFrame:
    """Fresh orders of the training distribution, as the pipeline makes them (without its module)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01").value // 10**9
    seconds = rng.integers(start, start + 365 * 86400, rows)
    frame = pd.DataFrame({"ordered_at": pd.to_datetime(seconds, unit="s").astype("datetime64[us]"),
                          "x": rng.normal(size=rows)})
    frame["y"] = ((frame["ordered_at"].dt.hour >= 12) ^ (frame["x"] > 1)).astype(int)
    return frame


def test_a_datetime_column_is_described_as_a_time_with_its_range():
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:00"]), "x": [1.0, 2.0]})
    t = describe_schema(frame)[0]
    assert t == {"name": "t", "kind": "datetime", "dtype": str(frame["t"].dtype), "min": "2024-01-01T10:00:00",
                 "max": "2024-01-02T11:00:00", "tz": None}
    aware = frame.assign(t=frame["t"].dt.tz_localize("Europe/Paris"))
    t = describe_schema(aware, categorical=["t"])[0]  # a time is a time, even among the categories
    assert t["kind"] == "datetime" and t["tz"] == "Europe/Paris" and t["min"] == "2024-01-01T10:00:00+01:00"
    assert "categories" not in t


def test_the_model_endpoint_shows_the_time_range_not_every_timestamp(client):
    features = {f["name"]: f for f in client.get("/model").json()["features"]}
    assert features["ordered_at"]["kind"] == "datetime" and "categories" not in features["ordered_at"]
    assert features["ordered_at"]["min"] < features["ordered_at"]["max"]


def test_a_valid_date_is_scored_without_a_warning_as_the_model_scores_it(client, built):
    from orchestrator.registry import load_model

    records = [{"ordered_at": "2024-04-10 15:57:00", "x": 0.2}, {"ordered_at": "2024-04-10T03:00:00", "x": 0.2},
               {"ordered_at": "2031-01-01 13:00", "x": 0.2}]  # after the training range: scored all the same
    answer = client.post("/predict", json=records)
    assert answer.status_code == 200, answer.text
    assert "warnings" not in answer.json(), answer.json()
    frame = pd.DataFrame({"ordered_at": pd.to_datetime([r["ordered_at"] for r in records], format="mixed").astype("datetime64[us]"),
                          "x": [0.2] * 3})
    assert answer.json()["prediction"] == load_model("orders", store=built["store"]).predict(frame)["prediction"]
    assert answer.json()["prediction"][:2] == [1, 0]


@pytest.mark.parametrize("value", ["not a date", 1712764620, True, "2024-04-10T15:57:00+02:00"])
def test_a_value_that_is_no_date_is_refused_naming_the_column_and_the_form(client, value):
    answer = client.post("/predict", json=[{"ordered_at": value, "x": 0.2}])
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "record 0: column ordered_at must be a date and time" in detail and "2024-" in detail, detail


def test_a_null_date_reaches_the_model_as_missing(client):
    answer = client.post("/predict", json=[{"ordered_at": None, "x": 0.2}])
    # The user's own transformer decides what a missing time means; ours is refused by LogisticRegression.
    assert answer.status_code in (200, 422) and "was not seen in training" not in answer.text


def test_a_time_zone_column_takes_an_offset_and_reads_a_naive_time_in_its_zone():
    from orchestrator.feature_times import as_times

    feature = describe_schema(pd.DataFrame({"t": pd.to_datetime(["2024-01-01 10:00"]).tz_localize("Europe/Paris")}))[0]
    times = as_times(pd.Series(["2024-06-01 12:00", "2024-06-01T10:00:00Z", "nope", None]), feature)
    assert str(times.dtype) == feature["dtype"]
    assert times.iloc[0] == times.iloc[1] == pd.Timestamp("2024-06-01 12:00", tz="Europe/Paris")
    assert times.iloc[2:].isna().all()


def _monitor(capsys, store, *args: str) -> tuple[int, str]:
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), "monitor", "orders", *args])
    return exited.value.code, capsys.readouterr().out


def test_the_monitor_compares_times_as_times(built, tmp_path, capsys):
    batch = _orders(800, 7)
    same = tmp_path / "same.csv"
    batch.to_csv(same, index=False)  # a CSV holds the dates as text
    code, out = _monitor(capsys, built["store"], "--batch", str(same))
    assert code == 0 and ": ok" in out.splitlines()[0], out
    assert "unseen categories" not in out

    later = tmp_path / "later.csv"
    batch.assign(ordered_at=batch["ordered_at"] + pd.DateOffset(years=10)).to_csv(later, index=False)
    code, out = _monitor(capsys, built["store"], "--batch", str(later), "--json")
    import json

    doc = json.loads(out)
    assert code == 1 and doc["status"] == "alert" and "ordered_at" in doc["drifted"]
    report = json.loads(open(doc["report_json"]).read())
    column = next(f for f in report["features"] if f["name"] == "ordered_at")
    assert column["kind"] == "datetime" and column["test"] == "ks" and column["bin_labels"][0].startswith("2024-")


def test_dates_that_do_not_parse_are_named_in_the_monitor_detail(built, tmp_path, capsys):
    batch = _orders(400, 8).astype({"ordered_at": object})
    batch.loc[:59, "ordered_at"] = "31/31/2024"
    path = tmp_path / "bad.csv"
    batch.to_csv(path, index=False)
    code, out = _monitor(capsys, built["store"], "--batch", str(path))
    assert "60 values are not dates and times (e.g. '31/31/2024')" in out, out


def test_a_version_that_described_a_time_as_a_category_keeps_its_behaviour():
    """Versions registered before times had a kind of their own: their schema said category, and so it stays."""
    from orchestrator.serve import known_categories, records_frame, unseen_categories, validate_records

    legacy = [{"name": "t", "kind": "category", "dtype": "datetime64[us]", "categories": ["2024-01-01 10:00:00"]}]
    records = [{"t": "2024-01-02 10:00:00"}]
    validate_records(records, legacy)
    assert unseen_categories(records, known_categories(legacy))[0].startswith("record 0: t '2024-01-02 10:00:00' "
                                                                              "was not seen in training")
    assert records_frame(records, legacy)["t"].tolist() == ["2024-01-02 10:00:00"]
