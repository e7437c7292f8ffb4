"""The shipped lifecycle pipeline on a data file its source step writes: the file is the model's training data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from orchestrator.audit import audit_version
from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.registry import Registry

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "pipelines"))  # the demo's data source, as the pipeline file imports it


def test_data_written_by_the_source_step_is_the_audited_training_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo's own data file, data/lifecycle/customers.csv, is written here
    lifecycle = load_pipeline(str(ROOT / "pipelines" / "lifecycle.py"))
    store, data = tmp_path / "store", tmp_path / "data" / "lifecycle" / "customers.csv"
    options = {"store": str(store), "data": data, "rows": 600, "C": [1.0]}

    first = lifecycle.run(**options)
    assert first.status == "succeeded", first.error and data.is_file()
    context = Context.open(store)
    row = Registry(context.lineage).resolve("churn@production")
    trail = audit_version(context.lineage, row)
    assert [d["path"] for d in trail["training_data"]] == [str(data)]
    content = trail["training_data"][0]["digest"]
    trained = next(s for s in trail["steps"] if s["step"] == "train_candidate")
    assert trained["params"]["params"] == {"model": "logistic", "C": 1.0}  # structured, not a repr string

    # The source step wrote the file its `data` parameter names: the next run finds it, all cached.
    second = lifecycle.run(**options)
    assert all(s.status == "cached" for s in second.steps.values()), second.steps

    # Edited data: the reason names the file, and the audit of the new version names its new content.
    text = data.read_text().splitlines()
    data.write_text("\n".join(text[:-1]) + "\n")  # one customer fewer
    fourth = lifecycle.run(**options)
    assert fourth.steps["source"].reason == f"content of file `data` changed ({data})"
    row = Registry(Context.open(store).lineage).versions("churn")[-1]
    assert [(d["path"], d["digest"] != content) for d in audit_version(context.lineage, row)["training_data"]] \
        == [(str(data), True)]


def _your_data(tmp_path: Path) -> Path:
    from datasource import ensure_dataset

    return ensure_dataset(tmp_path / "customers.csv", rows=600)


def test_a_missing_data_file_is_refused_not_generated(tmp_path, monkeypatch):
    """A typo in -p data must not train (and maybe promote) a model on the demo's synthetic data."""
    import subprocess

    monkeypatch.chdir(tmp_path)
    done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(tmp_path / "store"), "run",
                           str(ROOT / "pipelines" / "lifecycle.py"), "-p", "data=data/churn.cvs"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: data file data/churn.cvs does not exist. Pass an existing CSV or Parquet file, or leave out -p data "
        "to use the seeded demo data (data/lifecycle/customers.csv).")
    assert not (tmp_path / "data").exists()


def test_a_missing_monitor_batch_is_refused_before_training(tmp_path, monkeypatch, capsys):
    """-p monitor_batch=TYPO trained, gated and registered a model, then failed the run (exit 1) with
    FileNotFoundError in step ingest_batch."""
    from orchestrator.cli import main

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    try:
        main(["--store", str(store), "run", str(ROOT / "pipelines" / "lifecycle.py"), "-p", "rows=300",
              "-p", "monitor_batch=batch.csvv"])
    except SystemExit as exited:
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: monitor batch batch.csvv does not exist. Pass an existing CSV or Parquet file to -p monitor_batch, "
        "or leave it out to train without a drift check."), err
    assert not (tmp_path / "data").exists() and "Traceback" not in err  # nothing ran, nothing was generated


def test_doctor_names_a_registered_version_whose_artifact_is_gone(tmp_path):
    from orchestrator.doctor import examine
    from orchestrator.maintenance import repair_store, verify_store

    lifecycle = load_pipeline(str(ROOT / "pipelines" / "lifecycle.py"))
    store = tmp_path / "store"
    options = {"store": str(store), "data": _your_data(tmp_path), "C": [1.0]}
    run = lifecycle.run(**options)
    assert run.status == "succeeded", run.error
    context = Context.open(store)
    digest = Registry(context.lineage).resolve("churn@production")["digest"]
    context.store.path_of(digest).unlink()
    _, damaged = verify_store(context)
    repair_store(context, damaged)  # what `orch cache verify --repair` does: the row goes too

    findings = [f for f in examine(context).findings if f.check == "model"]
    assert len(findings) == 1
    assert findings[0].problem.startswith(f"churn@1 (production): its artifact {digest} is missing")
    # Its parameters too: the pipeline's defaults would train another model (`churn` on the demo data).
    assert f"--params-from {run.id}`" in findings[0].fix

    # The re-run the fix names restores it: v1 loads again and the doctor is satisfied.
    assert lifecycle.run(**options).steps["package"].reason.startswith("its stored result was removed")
    assert not [f for f in examine(Context.open(store)).findings if f.check == "model"]


def test_a_damaged_cached_model_is_recomputed_by_the_next_run(tmp_path):
    """The driver loads a cached candidate to register it: damage there is a miss, like a damaged input."""
    lifecycle = load_pipeline(str(ROOT / "pipelines" / "lifecycle.py"))
    store = tmp_path / "store"
    options = {"store": str(store), "data": _your_data(tmp_path), "C": [1.0]}
    assert lifecycle.run(**options).status == "succeeded"
    context = Context.open(store)
    digest = Registry(context.lineage).resolve("churn@1")["digest"]
    path = context.store.path_of(digest)
    damaged = bytearray(path.read_bytes())
    damaged[-100:] = b"\0" * 100
    path.chmod(0o644)
    path.write_bytes(bytes(damaged))

    run = lifecycle.run(**options)
    assert run.status == "succeeded", run.error
    assert run.steps["package"].status == "ran" and run.steps["package"].reason == "stored output was damaged"
    assert run.metrics["model"] == "churn@1"  # the same model, registered under its version again
    from orchestrator.registry import load_model

    assert load_model("churn@1", store=str(store)).version == 1


def _forget_after_the_test(monkeypatch, module: str) -> None:
    """Import ``module`` afresh in this test, and give later tests back the one they had (or none).

    The copy of the pipeline loads as module ``lifecycle`` when no test imported the shipped one before:
    left in ``sys.modules``, it was what a later ``import lifecycle`` got (NUMERIC = ['rooms', 'area']),
    so tests run alone with ``-k`` failed on columns of the copy.
    """
    monkeypatch.setitem(sys.modules, module, sys.modules.get(module))  # undone last: the module before, or none
    monkeypatch.delitem(sys.modules, module)


def test_a_copy_of_the_pipeline_trains_a_regression_on_a_continuous_label(tmp_path, monkeypatch):
    """The docs say: for your own data, edit LABEL, NUMERIC, CATEGORICAL and EXPECTATIONS. For a continuous
    label that failed in `split` (stratified on the label) and then in training (a classifier on it): the
    task was written as "classification" in five places."""
    import shutil

    import numpy as np
    import pandas as pd

    for name in ("lifecycle.py", "datasource.py", "expectations.py"):
        shutil.copy(ROOT / "pipelines" / name, tmp_path / name)
        _forget_after_the_test(monkeypatch, name.removesuffix(".py"))
    with open(tmp_path / "lifecycle.py", "a") as f:  # the user's edits of the constants at the top
        f.write('\nLABEL, TASK, NUMERIC, CATEGORICAL = "price", "regression", ["rooms", "area"], ["city"]\n'
                'EXPECTATIONS = [*columns(price="number", rooms="number", area="number", city="category")]\n')
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"rooms": rng.integers(1, 6, 300), "area": rng.normal(80, 20, 300),
                          "city": rng.choice(["oslo", "bergen"], 300)})
    frame["price"] = 50 * frame["rooms"] + 2 * frame["area"] + (frame["city"] == "oslo") * 100 + rng.normal(0, 5, 300)
    frame.to_csv(tmp_path / "houses.csv", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    pipeline = load_pipeline(str(tmp_path / "lifecycle.py"))
    run = pipeline.run(store=str(tmp_path / "store"), data=tmp_path / "houses.csv", model_name="houses",
                       metric="rmse", C=[1.0])
    assert run.status == "succeeded", run.error
    row = Registry(Context.open(tmp_path / "store").lineage).resolve("houses")
    assert row["task"] == "regression" and {"rmse", "mae", "r2"} <= set(row["metrics"]) and row["metrics"]["r2"] > 0.9


def test_a_data_file_the_pipeline_cannot_read_is_refused_before_any_step_runs(tmp_path, monkeypatch, capsys):
    """-p data=FOLDER failed step ingest with IsADirectoryError, and -p data=book.xlsx (read as CSV) with
    UnicodeDecodeError: exit 1, as if a step broke, instead of one line naming the fix (exit 2)."""
    from orchestrator.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04\x80\x81")
    import gzip

    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(b"age,churned\n40,1\n"))
    said = {
        ("data", "."): "error: data file . is a folder. Pass a CSV or Parquet file in it to -p data.",
        ("data", "book.xlsx"): "error: data file book.xlsx is not a .csv or .parquet file; this pipeline reads CSV "
                               "(comma-separated) and Parquet. Save it as one of them (e.g. DataFrame.to_parquet) "
                               "and pass it to -p data.",
        ("monitor_batch", "book.xlsx"): "error: monitor batch book.xlsx is not a .csv or .parquet file; this pipeline "
                                        "reads CSV (comma-separated) and Parquet. Save it as one of them (e.g. "
                                        "DataFrame.to_parquet) and pass it to -p monitor_batch.",
    }
    for (name, value), line in said.items():
        try:
            main(["--store", str(tmp_path / "store"), "plan", str(ROOT / "pipelines" / "lifecycle.py"),
                  "-p", f"{name}={value}"])
        except SystemExit as exited:
            code = exited.code
        err = capsys.readouterr().err
        assert code == 2 and err.strip().splitlines() == [line], err
    # A compressed CSV is read by pandas as it is: still accepted.
    from lifecycle import check_data

    check_data(tmp_path / "data.csv.gz")


def test_labels_a_stratified_split_cannot_divide_name_the_class_and_the_fix():
    """One row of a rare class failed split with sklearn's 'The least populated classes in y have only 1
    member ... groups'; a label of one class only failed every candidate with 'This solver needs samples
    of at least 2 classes'."""
    import pandas as pd
    import pytest
    from lifecycle import split

    frame = pd.DataFrame({"age": range(40), "churned": [1] + [0] * 39})
    with pytest.raises(ValueError, match=r"^the label 'churned' has only 1 row of the class 1 in these 40 rows: a "
                                         r"stratified split needs at least 2 rows of each class"):
        split(frame, test_size=0.25, seed=0)
    with pytest.raises(ValueError, match=r"^the label 'churned' has one class only \(0\) in these 39 rows: a "
                                         r"classifier needs rows of two or more classes"):
        split(frame.iloc[1:], test_size=0.25, seed=0)
    train, test = split(frame.assign(churned=[1, 1, 1] + [0] * 37), test_size=0.25, seed=0)
    assert len(train) + len(test) == 40 and set(test["churned"]) == {0, 1}
    # A continuous label left with TASK = "classification": hundreds of one-row "classes".
    with pytest.raises(ValueError, match=r"^the label 'churned' has 40 distinct numbers in these 40 rows, 40 of them "
                                         r"in one row only: it looks continuous. Set TASK = \"regression\""):
        split(frame.assign(churned=[i * 1.5 for i in range(40)]), test_size=0.25, seed=0)


def test_a_csv_that_is_not_utf8_says_how_to_save_it(tmp_path):
    """Excel's 'Unicode text' (UTF-16) or a Latin-1 export failed step ingest with "UnicodeDecodeError: 'utf-8'
    codec can't decode byte 0xff in position 0: invalid start byte"."""
    import pandas as pd
    import pytest
    from lifecycle import ingest

    frame = pd.DataFrame({"city": ["Zürich", "Genève"], "n": [1, 2]})
    for encoding, said in (("utf-16", "it is UTF-16"), ("latin-1", "it is in another encoding, e.g. Latin-1")):
        path = tmp_path / f"{encoding}.csv"
        frame.to_csv(path, index=False, encoding=encoding)
        with pytest.raises(ValueError, match=rf"^{path} is not UTF-8 text \({said}\)\. Save it as 'CSV UTF-8' "):
            ingest(path)
    frame.to_csv(tmp_path / "bom.csv", index=False, encoding="utf-8-sig")  # UTF-8 with a BOM reads as it is
    assert list(ingest(tmp_path / "bom.csv").columns) == ["city", "n"]


def _customers_with_many_regions(rows: int, seed: int):
    """The demo's customers with a category of hundreds of levels (a city, a postcode) in place of region."""
    import numpy as np
    from datasource import customers

    frame = customers(rows, seed=seed)
    return frame.assign(region=np.random.default_rng(seed).choice([f"r{i}" for i in range(400)], rows))


def test_boosting_trains_on_a_category_of_many_levels_and_a_column_with_no_values():
    """-p model=boosting on data with a category of many levels failed every candidate with 'Sparse data was
    passed for X, but dense data is required' (its one-hot is sparse); an all-empty number column made
    scikit-learn warn 'Skipping features without any observed values' on every prediction."""
    import warnings

    from lifecycle import split, train_candidate

    frame = _customers_with_many_regions(600, seed=0).assign(age=float("nan"))
    fit, valid = split(frame, test_size=0.25, seed=0)
    for params in ({"model": "boosting", "max_depth": 3, "learning_rate": 0.1}, {"model": "logistic", "C": 1.0}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning at fit or predict fails the test
            trained = train_candidate(params, fit, valid, seed=0, metric="roc_auc")
            trained["model"].predict_proba(valid.head(3))
        assert 0.5 < trained["score"] <= 1, (params, trained["validation"])


def test_the_drift_reference_is_rows_the_model_did_not_train_on():
    """A boosting model predicts its own training rows differently than new ones: with the training rows as
    the reference, `orch monitor` on a fresh batch of the same distribution said 'predictions drifted'."""
    from lifecycle import assess, package, select_best, split, train_candidate

    from orchestrator.monitor import compare

    train, test = split(_customers_with_many_regions(1600, seed=0), test_size=0.25, seed=0)
    fit, valid = split(train, test_size=0.25, seed=0)
    best = select_best([train_candidate({"model": "boosting", "max_depth": 6, "learning_rate": 0.3}, fit, valid,
                                        seed=0, metric="roc_auc")], metric="roc_auc")
    candidate = package(best, train, test, assess(best, test), name="churn", metric="roc_auc", margin=0.0,
                        data_params={})
    fresh = _customers_with_many_regions(1500, seed=7)
    result = compare(candidate, fresh)
    assert result.prediction.status == "ok", result.prediction


def test_a_date_among_the_declared_numbers_is_named_before_any_candidate_trains(monkeypatch):
    """A Parquet file's datetime column added to NUMERIC failed each train_candidate with numpy's 'DTypePromotionError:
    The DType <class 'numpy.dtypes.DateTime64DType'> could not be promoted by <class 'numpy.dtypes.Float64DType'>'."""
    import lifecycle
    import pandas as pd
    import pytest
    from datasource import customers
    from expectations import DataValidationError

    frame = customers(300).assign(signup=pd.date_range("2024-01-01", periods=300, freq="D"))
    monkeypatch.setattr(lifecycle, "NUMERIC", [*lifecycle.NUMERIC, "signup"])
    with pytest.raises(DataValidationError, match=r"^'signup' holds dates, which a model cannot take"):
        lifecycle.require_valid(frame, lifecycle.validate(frame))
    monkeypatch.setattr(lifecycle, "NUMERIC", [n for n in lifecycle.NUMERIC if n != "signup"])
    assert list(lifecycle.require_valid(frame, lifecycle.validate(frame)).columns) == [
        *lifecycle.NUMERIC, *lifecycle.CATEGORICAL, lifecycle.LABEL]


def test_a_data_file_of_no_rows_is_refused_before_any_step_runs(tmp_path, monkeypatch, capsys):
    """An empty CSV failed step ingest with pandas' 'EmptyDataError: No columns to parse from file' (exit 1), and a
    header-only one every number column's expectation ('columns expected number, got object'), as if the columns
    were wrong."""
    import pandas as pd
    from datasource import customers

    from orchestrator.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.csv").write_bytes(b"")
    customers(5).head(0).to_csv(tmp_path / "header.csv", index=False)
    customers(5).head(0).to_parquet(tmp_path / "header.parquet")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "one.csv", index=False)
    said = {
        ("data", "empty.csv"): "error: data file empty.csv is empty (0 bytes). Pass a file with a header and rows to "
                               "-p data.",
        ("data", "header.csv"): "error: data file header.csv has no rows (a header at most). Pass a file with a "
                                "header and rows to -p data.",
        ("data", "header.parquet"): "error: data file header.parquet has no rows (a header at most). Pass a file with "
                                    "a header and rows to -p data.",
        ("monitor_batch", "header.csv"): "error: monitor batch header.csv has no rows (a header at most). Pass a file "
                                         "with a header and rows to -p monitor_batch.",
    }
    for (name, value), line in said.items():
        try:
            main(["--store", str(tmp_path / "store"), "plan", str(ROOT / "pipelines" / "lifecycle.py"),
                  "-p", f"{name}={value}"])
        except SystemExit as exited:
            code = exited.code
        err = capsys.readouterr().err
        assert code == 2 and err.strip().splitlines() == [line], err
    from lifecycle import check_rows

    check_rows(tmp_path / "one.csv", "data file", "-p data")  # one row is a file of rows


def test_a_category_written_in_numbers_with_missing_values_trains(monkeypatch):
    """A store number (or postcode) in CATEGORICAL with a blank cell failed every candidate: filled with the text
    'missing', it mixed numbers with text ('Encoders require their input argument must be uniformly strings or
    numbers. Got ['float', 'str']'). An all-empty one failed boosting's binning ('window shape cannot be larger')."""
    import lifecycle
    import numpy as np

    frame = _customers_with_many_regions(600, seed=0)
    store = np.random.default_rng(0).integers(1, 30, 600).astype(float)
    store[:40] = np.nan
    frame = frame.assign(store=store, unknown=np.nan)
    monkeypatch.setattr(lifecycle, "CATEGORICAL", [*lifecycle.CATEGORICAL, "store", "unknown"])
    fit, valid = lifecycle.split(frame, test_size=0.25, seed=0)
    for params in ({"model": "boosting", "max_depth": 3, "learning_rate": 0.1}, {"model": "logistic", "C": 1.0}):
        trained = lifecycle.train_candidate(params, fit, valid, seed=0, metric="roc_auc")
        served = valid.head(2).assign(store=[np.nan, 999.0], unknown=[np.nan, 4.0])  # missing, and never seen
        assert len(trained["model"].predict(served)) == 2 and trained["score"] > 0.5, params


def test_a_null_category_is_served_as_the_blank_cell_the_model_was_trained_on(tmp_path):
    """orch serve passed the JSON nulls of a category column that was null in every record of a request (one
    record with a null) to the model as None, which its SimpleImputer (looking for NaN) left alone: the row was
    scored as an unknown category, not as 'missing' like the blank cells it was trained on, so the server answered
    otherwise than load_model().predict or orch monitor on the same row."""
    import pandas as pd
    from lifecycle import CATEGORICAL, NUMERIC, split, train_candidate

    from orchestrator.registry import describe_schema
    from orchestrator.serve import records_frame

    frame = pd.read_csv(_your_data(tmp_path))  # region has blank cells
    fit, valid = split(frame, test_size=0.25, seed=0)
    model = train_candidate({"model": "logistic", "C": 1.0}, fit, valid, seed=0, metric="roc_auc")["model"]
    schema = describe_schema(fit[NUMERIC + CATEGORICAL])
    rows = valid[NUMERIC + CATEGORICAL].dropna().head(2).assign(region=float("nan"))
    for posted in (rows.head(1), rows):  # one record with a null, or several whose region are all null
        records = [{**r, "region": None} for r in posted.to_dict("records")]
        assert model.predict_proba(records_frame(records, schema)).tolist() == model.predict_proba(posted).tolist()


def test_a_true_false_category_with_blanks_trains_and_is_served_as_booleans(monkeypatch):
    """A CSV's True/False column with blank cells is of dtype object: in CATEGORICAL it failed every candidate
    ("Got ['bool', 'str']"), and the server refused JSON true for it and took the text "True", which the model had
    never seen (scored as unknown, without a warning)."""
    import lifecycle
    import numpy as np
    import pandas as pd
    from datasource import customers

    from orchestrator.registry import describe_schema
    from orchestrator.serve import records_frame, validate_records

    flags = pd.Series(np.random.default_rng(0).random(600) < 0.5, dtype=object)
    flags[:30] = np.nan  # as read_csv gives a blank cell of a True/False column
    frame = customers(600).assign(paperless=flags)
    monkeypatch.setattr(lifecycle, "CATEGORICAL", [*lifecycle.CATEGORICAL, "paperless"])
    fit, valid = lifecycle.split(frame, test_size=0.25, seed=0)
    features = lifecycle.NUMERIC + lifecycle.CATEGORICAL
    schema = describe_schema(fit[features])
    assert [f["dtype"] for f in schema if f["name"] == "paperless"] == ["boolean"]
    rows = valid[features].head(3).assign(paperless=pd.Series([True, False, np.nan], dtype=object).to_numpy())
    records = [{k: (None if not isinstance(v, (str, bool)) and pd.isna(v) else v) for k, v in r.items()}
               for r in rows.to_dict("records")]
    validate_records(records, schema)  # JSON true/false/null is what the column takes
    for params in ({"model": "boosting", "max_depth": 3, "learning_rate": 0.1}, {"model": "logistic", "C": 1.0}):
        model = lifecycle.train_candidate(params, fit, valid, seed=0, metric="roc_auc")["model"]
        assert model.predict_proba(records_frame(records, schema)).tolist() == model.predict_proba(rows).tolist()


def test_a_text_category_whose_missing_values_are_pd_na_trains(tmp_path):
    """A Parquet file written from pandas' 'string' dtype reads back with pd.NA for a blank: every candidate failed
    in scikit-learn's imputer with 'TypeError: boolean value of NA is ambiguous'."""
    import pandas as pd
    from datasource import customers
    from lifecycle import require_valid, split, train_candidate, validate

    frame = customers(600).astype({"region": "string", "contract": "string"})
    frame.to_parquet(tmp_path / "customers.parquet")
    raw = pd.read_parquet(tmp_path / "customers.parquet")
    assert raw["region"].isna().any() and raw["region"].dtype.na_value is pd.NA
    clean = require_valid(raw, validate(raw))
    fit, valid = split(clean, test_size=0.25, seed=0)
    for params in ({"model": "boosting", "max_depth": 3, "learning_rate": 0.1}, {"model": "logistic", "C": 1.0}):
        assert train_candidate(params, fit, valid, seed=0, metric="roc_auc")["score"] > 0.5


def test_load_model_predict_scores_a_pd_na_category_as_the_pipeline_and_the_server_do(tmp_path):
    """load_model(...).predict(frame) on the user's own frame, a text category of pandas' 'string' dtype with pd.NA
    for a blank (as a Parquet file written from it reads back), failed inside the model with 'boolean value of NA
    is ambiguous'; the pipeline (require_valid) and orch serve (records_frame) give such a blank as NaN."""
    import numpy as np
    import pandas as pd
    from lifecycle import CATEGORICAL, LABEL, NUMERIC, split, train_candidate

    from orchestrator.registry import LoadedModel, ModelCandidate, describe_schema, evaluate, model_digest
    from orchestrator.serve import records_frame

    frame = pd.read_csv(_your_data(tmp_path))  # region has blank cells
    fit, valid = split(frame, test_size=0.25, seed=0)
    model = train_candidate({"model": "logistic", "C": 1.0}, fit, valid, seed=0, metric="roc_auc")["model"]
    features = NUMERIC + CATEGORICAL
    candidate = ModelCandidate("churn", model, "classification", describe_schema(fit[features]), LABEL,
                               evaluate("classification", model, valid[features], valid[LABEL]), "roc_auc", 0.0,
                               model_digest(model), eval_data=valid, reference=valid[features])
    rows = valid[features].dropna().head(4).reset_index(drop=True)
    blank = rows.assign(region=pd.array([pd.NA, *rows["region"][1:]], dtype="string"))
    none = rows.assign(region=pd.Series([None, *rows["region"][1:]], dtype=object))
    as_trained = rows.assign(region=pd.Series([np.nan, *rows["region"][1:]], dtype=object))  # a blank CSV cell
    served = records_frame([{**r, "region": None if i == 0 else r["region"]}
                            for i, r in enumerate(rows.to_dict("records"))], candidate.features)
    expected = [round(float(p), 6) for p in model.predict_proba(as_trained)[:, 1]]
    assert [round(float(p), 6) for p in model.predict_proba(served)[:, 1]] == expected
    loaded = LoadedModel("churn", 1, {}, candidate)  # what load_model returns
    for given in (blank, none):
        assert loaded.predict(given)["probability"] == expected
    assert blank["region"].dtype == "string" and blank["region"].isna().iloc[0]  # the user's frame is left as it was


def test_numbers_written_as_text_are_served_and_monitored_as_numbers():
    """A NUMERIC column of digits stored as text trained, but its schema said category: orch serve refused a number
    for it ('must be a string (a category)') and orch monitor compared it as categories."""
    import pandas as pd
    from datasource import customers
    from expectations import check_frame
    from lifecycle import NUMERIC, require_valid

    from orchestrator.registry import describe_schema

    raw = customers(300).astype({"support_calls": str})
    clean = require_valid(raw, check_frame(raw, []))  # a pipeline whose EXPECTATIONS declare no column types
    kinds = {f["name"]: f["kind"] for f in describe_schema(clean[NUMERIC])}
    assert kinds["support_calls"] == "number" and clean["support_calls"].tolist() == customers(300)[
        "support_calls"].tolist()
    assert pd.api.types.is_numeric_dtype(clean["support_calls"])


def test_the_shipped_candidates_learn_a_rare_class_and_the_gate_promotes_them(tmp_path):
    """2 % churners, weakly told by the support calls: the unweighted logistic never predicted one (accuracy
    0.98, F1 0), so with -p metric=f1 every candidate scored 0 and the first was promoted without a word. The
    shipped candidates weigh the classes (CLASS_WEIGHT = "balanced"); the gate would refuse one that learned
    nothing."""
    import numpy as np
    from datasource import customers, write_table

    frame = customers(4000, seed=1)
    rng = np.random.default_rng(3)
    score = frame["support_calls"] * 0.3 + rng.normal(size=len(frame))
    frame["churned"] = (score > np.quantile(score, 0.98)).astype(int)
    data = write_table(frame, tmp_path / "rare.csv")
    lifecycle = load_pipeline(str(ROOT / "pipelines" / "lifecycle.py"))
    run = lifecycle.run(store=str(tmp_path / "store"), data=data, metric="f1", C=[1.0])
    assert run.status == "succeeded", run.error
    assert run.metrics["f1"] > 0 and run.metrics["balanced_accuracy"] > 0.6, run.metrics
    assert run.metrics["gate"].startswith("promoted to production: no production version yet (f1 "), run.metrics
    assert "beats the majority-class baseline 0.0000 on 1000 test rows" in run.metrics["gate"]


def test_the_demo_data_follows_p_rows_once_written_and_an_edited_file_is_kept(tmp_path):
    """`-p rows=300` after a first run was silently ignored: the demo's file was there, so it kept 4000 rows."""
    import pandas as pd
    from datasource import customers, ensure_dataset, write_table

    path = tmp_path / "customers.csv"
    ensure_dataset(path, rows=300, resize=True)
    ensure_dataset(path, rows=250, seed=1, resize=True)
    assert pd.read_csv(path).equals(pd.read_csv(write_table(customers(250, seed=1), tmp_path / "expected.csv")))
    ensure_dataset(path, rows=400)  # without resize (a file of yours): never written again
    assert len(pd.read_csv(path)) == 250
    edited = pd.read_csv(path).assign(age=40)
    edited.to_csv(path, index=False)
    ensure_dataset(path, rows=400, resize=True)  # no longer as generated: kept, as your own file is
    assert pd.read_csv(path).equals(edited)


def test_a_run_with_p_rows_trains_on_that_many_demo_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lifecycle = load_pipeline(str(ROOT / "pipelines" / "lifecycle.py"))
    store, data = tmp_path / "store", tmp_path / "data" / "lifecycle" / "customers.csv"
    assert lifecycle.run(store=str(store), rows=300, C=[1.0]).status == "succeeded"
    again = lifecycle.run(store=str(store), rows=400, C=[1.0])
    assert again.status == "succeeded" and len(again.steps["ingest"].output()) == 400
    assert len(data.read_text().splitlines()) == 401


def _postcodes(rows: int, seed: int, codes: list[float]) -> Any:
    """The demo's customers with a postcode column, floats (a blank read as NaN), as a CSV with blanks gives it."""
    import numpy as np
    from datasource import customers

    rng = np.random.default_rng(seed)
    zips = rng.choice(codes, rows)
    zips[rng.random(rows) < 0.05] = np.nan
    return customers(rows, seed=seed).assign(zip=zips)


def test_a_category_written_in_numbers_is_served_and_monitored_as_a_category(monkeypatch):
    """Postcodes listed in CATEGORICAL trained as categories, but the schema said 'number': orch serve gave an
    unseen code (12345) no warning, took 75001.5 and refused "75001" ('must be a number'), and orch monitor compared
    the codes as numbers (no 'unseen categories'). 75001, 75001.0 and "75001" are one code."""
    import lifecycle
    import numpy as np
    import pytest

    from orchestrator.monitor import compare
    from orchestrator.registry import LoadedModel
    from orchestrator.serve import (
        RequestProblem,
        known_categories,
        parse_records,
        records_frame,
        unseen_categories,
        validate_records,
    )

    monkeypatch.setattr(lifecycle, "CATEGORICAL", [*lifecycle.CATEGORICAL, "zip"])
    train, test = lifecycle.split(_postcodes(800, 0, [75001.0, 69002.0, 6000.0, 59000.0]), test_size=0.25, seed=0)
    fit, valid = lifecycle.split(train, test_size=0.25, seed=0)
    best = lifecycle.select_best([lifecycle.train_candidate({"model": "logistic", "C": 1.0}, fit, valid, seed=0,
                                                            metric="roc_auc")], metric="roc_auc")
    candidate = lifecycle.package(best, train, test, lifecycle.assess(best, test), name="churn", metric="roc_auc",
                                  margin=0.0, data_params={})
    zip_code = next(f for f in candidate.features if f["name"] == "zip")
    assert zip_code == {
        "name": "zip", "kind": "category", "dtype": "float64", "categories": ["6000", "59000", "69002", "75001"]}
    with pytest.raises(RequestProblem, match=r'e\.g\. \[\{"zip": 6000\}\]'):  # the example record shows a code
        parse_records(b"[]", [zip_code])

    features = lifecycle.NUMERIC + lifecycle.CATEGORICAL
    row = test[features].dropna().head(1).assign(zip=75001.0)
    records = [{**row.to_dict("records")[0], "zip": z} for z in (75001, 75001.0, "75001", 12345, 75001.5, "Paris")]
    validate_records(records, candidate.features)  # no 422: a code is a number or its text
    warned = unseen_categories(records, known_categories(candidate.features))
    assert [w.split(" was ")[0] for w in warned] == ["record 3: zip '12345'", "record 4: zip '75001.5'",
                                                     "record 5: zip 'Paris'"]
    proba = candidate.model.predict_proba(records_frame(records, candidate.features))[:, 1]
    assert np.allclose(proba[:3], candidate.model.predict_proba(row)[0, 1])  # one code, however written
    assert np.allclose(proba[3:], proba[3])  # unseen codes and text alike are scored as unknown
    loaded = LoadedModel("churn", 1, {}, candidate)  # what load_model returns
    assert np.allclose(loaded.predict(row.assign(zip="75001"))["probability"], proba[0])

    fresh = _postcodes(600, 5, [75001.0, 69002.0, 6000.0, 59000.0]).dropna(subset=["zip"]).astype({"zip": int})
    same = next(f for f in compare(candidate, fresh).features if f.name == "zip")
    assert (same.kind, same.status, same.detail) == ("category", "ok", "")  # ints are the float codes of training
    moved = next(f for f in compare(candidate, fresh.assign(zip=12345)).features
                 if f.name == "zip")
    assert moved.status == "drift" and moved.detail.endswith("unseen categories: 12345"), moved


def test_text_in_a_regression_label_is_said_by_require_valid_and_numbers_as_text_are_numbers(monkeypatch):
    """LABEL = "spend" with values like '938.64 EUR' and TASK = "regression" passed validation, and every candidate
    failed with scikit-learn's 'ValueError: could not convert string to float'."""
    import lifecycle
    import pandas as pd
    import pytest
    from datasource import customers
    from expectations import DataValidationError, check_frame

    monkeypatch.setattr(lifecycle, "TASK", "regression")
    monkeypatch.setattr(lifecycle, "LABEL", "spend")
    raw = customers(300).assign(spend=lambda f: [f"{v:.2f} EUR" for v in f["monthly_charges"] * 12])
    with pytest.raises(DataValidationError, match=r"^the label 'spend' of a regression holds text in 300 of its 300 "
                                                  r"rows \(e\.g\. '\d+\.\d\d EUR'\): make it numbers"):
        lifecycle.require_valid(raw, check_frame(raw, []))
    written = raw.assign(spend=lambda f: [f"{v:.2f}" for v in f["monthly_charges"] * 12])  # a Parquet of strings
    clean = lifecycle.require_valid(written, check_frame(written, []))
    assert pd.api.types.is_numeric_dtype(clean["spend"]) and clean["spend"].iloc[0] == float(written["spend"].iloc[0])
