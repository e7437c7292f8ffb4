"""``orch monitor`` on a user's mistakes and on windows too small to judge: one clear line, the right exit code.

A mistake (a bad batch file, a model without a drift reference, a damaged
model artifact, out-of-range thresholds, options that would be ignored) is
one ``error:`` line and exit 2, never a traceback, and never exit 1, which
means an alert. A window too small or lacking feature columns is
``insufficient_data`` (exit 0) and says why. The served request log is read
for the checked version only. The store is built once per module by a tiny
pipeline (a two-feature logistic regression), not by the lifecycle demo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.context import Context
from orchestrator.loader import load_pipeline

from .conftest import copy_store

TINY_PIPELINE = '''
from orchestrator import pipeline, step
from orchestrator.monitor import DriftCheck
from orchestrator.registry import ModelCandidate, describe_schema, model_digest


@step
def fit(model_name: str, seed: int, with_reference: bool, auc: float, key: str) -> ModelCandidate:
    """A logistic regression on x and z; the reference is its training features, unless left out. A keyed
    model keeps its rows as held-out rows too (``eval_data``), for the chance test of its metric."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400)})
    y = (X["x"] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    return ModelCandidate(model_name, model, "classification", describe_schema(X), "y", {"roc_auc": auc},
                          "roc_auc", 0.0, model_digest(model), reference=X if with_reference else None,
                          key=key or None, eval_data=X.assign(y=y) if key else None)


@step
def check(candidate: ModelCandidate, rows: int) -> DriftCheck:
    """The lifecycle demo's monitor step, on a fresh sample."""
    import numpy as np
    import pandas as pd

    from orchestrator.monitor import compare

    rng = np.random.default_rng(7)
    batch = pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows)})
    return DriftCheck(candidate.name, candidate.model_digest, "fresh", compare(candidate, batch))


@pipeline
def tiny(model_name: str = "tiny", seed: int = 0, with_reference: bool = True, auc: float = 0.8,
         monitor_rows: int = 0, key: str = ""):
    candidate = fit(model_name, seed, with_reference, auc, key)
    if monitor_rows:
        check(candidate, monitor_rows)
'''


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store with tiny v1 and v2 (production), noref v1, registered without a drift reference, and
    keyed v1, whose rows are named by an ``id`` column."""
    base = tmp_path_factory.mktemp("monitor")
    (base / "tiny_model.py").write_text(TINY_PIPELINE)
    tiny = load_pipeline(str(base / "tiny_model.py"))
    store = base / "store"
    for params in ({"seed": 0}, {"seed": 1, "auc": 0.9}, {"model_name": "noref", "with_reference": False},
                   {"model_name": "keyed", "key": "id"}):
        assert tiny.run(store=str(store), **params).status == "succeeded"
    return {"base": base, "store": store, "pipeline": tiny}


@pytest.fixture
def store(built, tmp_path):
    """A private copy of the built store, for tests that write checks or damage it."""
    return copy_store(built["store"], tmp_path / "store")


def _frame(rows: int, shift: float = 0.0, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1, rows), "z": rng.normal(0, 1, rows)})


def _orch(capsys, store: Path, *args: str) -> tuple[int, str, str]:
    """``orch --store STORE ARGS`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), *args])
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("name", "content", "says"), [
    ("empty.csv", b"", "is empty (0 bytes)"),
    ("blank.csv", b"\n\n", "holds no CSV columns"),
    ("header.csv", b"x,z\n", "has columns but no rows"),
    ("random.parquet", bytes(range(256)) * 4, "is not a readable Parquet file"),
    ("text.parquet", b"x,z\n1,2\n", "is not a readable Parquet file"),
    ("latin1.csv", b"\xff\xfe\x00x,z\n\x80\x81,3\n", "is not a readable CSV file"),
    ("batch.xlsx", b"PK\x03\x04", "neither .csv (also compressed, .csv.gz) nor .parquet"),
    ("batch.gz", b"\x1f\x8b", "neither .csv (also compressed, .csv.gz) nor .parquet"),
    ("torn.csv.gz", __import__("gzip").compress(b"x,z\n" + b"1,2\n" * 500, mtime=0)[:30], "not readable as gz-compressed CSV"),
    ("plain.csv.gz", b"x,z\n1,2\n", "not readable as gz-compressed CSV"),
])
def test_an_unreadable_batch_is_one_line_naming_the_file(built, tmp_path, capsys, name, content, says):
    """Bug 1: empty, header-only, non-Parquet, undecodable and unsupported batch files gave tracebacks."""
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = _orch(capsys, built["store"], "monitor", "tiny", "--batch", str(path))
    line = _one_error_line(err)
    assert code == 2 and f"batch file {path}" in line and says in line


def test_a_header_only_parquet_batch_is_refused(built, tmp_path, capsys):
    """Bug 1: a Parquet file with columns and no rows is no batch to check."""
    path = tmp_path / "none.parquet"
    _frame(10).iloc[:0].to_parquet(path)
    code, _, err = _orch(capsys, built["store"], "monitor", "tiny", "--batch", str(path))
    assert code == 2 and "has columns but no rows" in _one_error_line(err)


def test_a_batch_without_any_feature_column_is_the_wrong_file(built, tmp_path, capsys):
    """A batch that shares no column with the model is a mistake, not an insufficient_data verdict."""
    path = tmp_path / "other.csv"
    pd.DataFrame({"a": range(50)}).to_csv(path, index=False)
    code, _, err = _orch(capsys, built["store"], "monitor", "tiny", "--batch", str(path))
    line = _one_error_line(err)
    assert code == 2 and "none of the feature columns of tiny v2 (x, z)" in line and "its columns are a" in line
    assert line.endswith("Is it the right file?")


def test_a_semicolon_separated_batch_is_named_as_such(built, tmp_path, capsys):
    """Excel's CSV in many locales reads as one column 'x;z': 'Is it the right file?' pointed the wrong way."""
    path = tmp_path / "excel.csv"
    _frame(50).to_csv(path, sep=";", index=False)
    code, _, err = _orch(capsys, built["store"], "monitor", "tiny", "--batch", str(path))
    line = _one_error_line(err)
    assert code == 2 and "its columns are x;z. It looks separated by semicolons: a CSV batch is read " \
        "comma-separated" in line, line


def test_a_model_without_a_reference_says_how_to_add_one(built, tmp_path, capsys):
    """Bug 2: ModelCandidate(reference=None) made `orch monitor` raise a TypeError."""
    path = tmp_path / "batch.csv"
    _frame(200).to_csv(path, index=False)
    code, _, err = _orch(capsys, built["store"], "monitor", "noref", "--batch", str(path))
    line = _one_error_line(err)
    assert code == 2 and "without a training reference" in line and "reference=" in line


def test_the_monitor_step_on_a_model_without_a_reference_fails_clearly(built, tmp_path):
    """Bug 2, inside a pipeline: the step fails with the same message, not a TypeError."""
    run = built["pipeline"].run(store=str(tmp_path / "store"), model_name="noref", with_reference=False,
                                monitor_rows=100)
    assert run.status == "failed"
    error = run.steps["check"].error or ""
    assert "without a training reference" in error and "TypeError" not in error


def test_served_requests_are_read_for_the_checked_version_only(store, capsys):
    """Bug 3: NAME@VERSION (and NAME, the production version) read the requests of every version."""
    from orchestrator.request_log import append_requests

    def serve(version: int, frame: pd.DataFrame) -> None:
        context = Context.open(store)
        records = json.loads(frame.to_json(orient="records"))
        append_requests(context, "tiny", version, records, {"prediction": [0] * len(records)})
        context.lineage.close()

    serve(1, _frame(300, shift=3.0))
    code, out, _ = _orch(capsys, store, "monitor", "tiny")
    assert code == 0 and "tiny v2: served requests of v2 (none logged), 0 rows: insufficient_data" in out
    assert "no requests served by tiny v2 are logged" in out and "v1 served 300 (`orch monitor tiny@1`)" in out
    serve(2, _frame(300, seed=4))
    code, out, _ = _orch(capsys, store, "monitor", "tiny")
    assert code == 0 and "tiny v2: served requests of v2 (last 300), 300 rows: ok" in out
    code, out, err = _orch(capsys, store, "monitor", "tiny@1", "--last", "100")
    assert code == 1 and "tiny v1: served requests of v1 (last 100), 100 rows: alert" in out and "alert" in err
    code, out, _ = _orch(capsys, store, "monitor", "tiny@2", "--history")
    assert code == 0 and " v2 " in out and " v1 " not in out  # @VERSION narrows the history too


def test_the_request_index_never_reads_files_outside_the_model_folder(store, tmp_path, capsys):
    """A crafted metadata.db indexing an absolute path, `..` or a symlinked segment is not read."""
    from orchestrator.request_log import append_requests, read_requests

    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps({"features": {"x": 99.0, "z": 99.0}, "prediction": {"prediction": 1}}) + "\n")
    context = Context.open(store)
    logged = append_requests(context, "tiny", 2, [{"x": 0.5, "z": 0.5}], {"prediction": [0]})
    folder = logged.parent
    (folder / "link.jsonl").symlink_to(outside)
    (folder / ".00000000000000000001-1-abcdef.open").symlink_to(outside)  # named as an open segment
    (folder / "garbage.jsonl").write_text("not json\n[1, 2]\n{\"features\": 3}\n")
    planted = [str(outside), f"serving/tiny/../../../{outside.name}", "serving/tiny/link.jsonl",
               "serving/tiny/garbage.jsonl", "serving/other/x.jsonl"]
    with context.lineage.transaction() as c:
        c.executemany("INSERT INTO request_segments (path, name, version, rows, created) VALUES (?,?,?,?,?)",
                      [(path, "tiny", 2, 1, 1e10) for path in planted])
    frame, scores = read_requests(context, "tiny", version=2)
    context.lineage.close()
    assert frame.to_dict("records") == [{"x": 0.5, "z": 0.5}] and scores == [0.0]
    code, out, err = _orch(capsys, store, "monitor", "tiny")
    assert code == 0 and "Traceback" not in err and "1 rows" in out


def test_a_tiny_batch_is_insufficient_data_not_an_alert(store, tmp_path, capsys):
    """Bug 4: 3 rows, one with a missing value, raised an alert on the missing ratio."""
    path = tmp_path / "tiny.csv"
    frame = _frame(3)
    frame.loc[0, "x"] = np.nan
    frame.to_csv(path, index=False)
    code, out, err = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and "alert" not in out + err
    assert "3 rows: insufficient_data" in out and "3 rows in the window; at least 30 are needed" in out


def test_a_batch_missing_a_feature_column_names_it_and_does_not_alert(store, tmp_path, capsys):
    """Bug 4: a missing column was filled with NaN, so it 'drifted' and raised an alert."""
    path = tmp_path / "no_z.csv"
    _frame(300)[["x"]].to_csv(path, index=False)
    code, out, err = _orch(capsys, store, "monitor", "tiny", "--batch", str(path), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "insufficient_data" and not doc["alert"] and doc["drifted"] == []
    assert any("lacks 1 of 2 feature columns (z)" in r and "nor are the predictions" in r for r in doc["reasons"])


def test_a_drifted_batch_missing_a_column_still_alerts_and_names_it(store, tmp_path, capsys):
    """A missing column does not hide drift in the columns that are there."""
    path = tmp_path / "shifted_no_z.csv"
    _frame(300, shift=3.0)[["x"]].to_csv(path, index=False)
    code, out, err = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 1 and ": alert" in out and "lacks 1 of 2 feature columns (z)" in out and "alert" in err


@pytest.mark.parametrize("option", [("--psi", "-1"), ("--psi", "0"), ("--psi", "nan"), ("--drop", "inf"), ("--p-value", "2"), ("--p-value", "0"),
                                    ("--p-value", "1"), ("--drop", "-0.5"), ("--drop", "0")])
def test_thresholds_out_of_range_are_usage_errors(built, capsys, option):
    """Bug 5: nonsense thresholds were accepted and silently changed the verdict."""
    code, _, err = _orch(capsys, built["store"], "monitor", "tiny", *option)
    assert code == 2 and f"Invalid value for '{option[0]}'" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "says"), [
    (("--history", "--batch", "b.csv"), "--history shows past checks and runs none, so --batch would be ignored"),
    (("--history", "--psi", "0.3", "--last", "10"), "so --last and --psi would be ignored"),
    (("--batch", "b.csv", "--last", "10"), "Give one of --batch or --last"),
])
def test_options_the_mode_would_ignore_are_refused(built, capsys, args, says):
    """Bug 6: --batch with --history (and --last with --batch) were silently ignored."""
    code, _, err = _orch(capsys, built["store"], "monitor", "tiny", *args)
    assert code == 2 and says in _one_error_line(err)


def test_a_damaged_model_artifact_is_exit_2_with_the_fix(store, tmp_path, capsys):
    """Bug 7: a damaged model exited 1, which reads as a drift alert."""
    context = Context.open(store)
    row = context.lineage.row("SELECT digest, run_id FROM model_versions WHERE name='tiny' AND version=2")
    context.lineage.close()
    obj = next(p for p in (store / "objects").rglob(row["digest"] + "*") if p.is_file())
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    path = tmp_path / "batch.csv"
    _frame(100).to_csv(path, index=False)
    code, _, err = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    line = _one_error_line(err)
    assert code == 2 and f"model tiny@2: its artifact {row['digest']}" in line
    assert "re-run the pipeline that made it" in line and "computes it again" in line
    assert f"orch show {row['run_id']}" in line and "orch doctor" in line
    pytest.importorskip("fastapi")
    code, _, err = _orch(capsys, store, "serve", "tiny", "--port", "0")  # it exited 1 for the same model
    assert code == 2 and f"model tiny@2: its artifact {row['digest']}" in _one_error_line(err)


def test_a_clean_batch_is_still_ok(store, tmp_path, capsys):
    """The fixes leave the plain path alone: a fresh sample is ok, exit 0."""
    path = tmp_path / "fresh.parquet"
    _frame(300).to_parquet(path)
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and f"tiny v2: batch {path}, 300 rows: ok" in out


@pytest.mark.parametrize("name", ["fresh.csv.gz", "fresh.csv.bz2", "fresh.txt.xz"])
def test_a_compressed_csv_batch_is_read_as_the_pipeline_reads_it(store, tmp_path, capsys, name):
    """`-p monitor_batch=batch.csv.gz` worked in the lifecycle pipeline, and `orch monitor --batch
    batch.csv.gz` refused the same file: "the extension '.gz', which is neither .csv nor .parquet"."""
    path = tmp_path / name
    _frame(300).to_csv(path, index=False)  # pandas compresses by the extension
    code, out, err = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and f"tiny v2: batch {path}, 300 rows: ok" in out, err


def test_a_window_the_model_cannot_score_is_not_ok_and_says_why(store, tmp_path, capsys):
    """A batch the production model refuses (one NaN its estimator cannot take) read as ``ok``: the predictions
    were silently left out of the check."""
    path = tmp_path / "one_nan.csv"
    frame = _frame(300)
    frame.loc[5, "x"] = np.nan
    frame.to_csv(path, index=False)
    code, out, err = _orch(capsys, store, "monitor", "tiny", "--batch", str(path), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "insufficient_data" and not doc["alert"] and doc["drifted"] == []
    assert any("the predictions are not compared: the model cannot score the window (ValueError: Input X "
               "contains NaN" in r for r in doc["reasons"]), doc["reasons"]


def test_a_lacking_column_is_named_once_and_the_history_says_why_a_check_was_not_ok(store, tmp_path, capsys):
    """A batch lacking a column printed it again as 'z: insufficient_data the column is missing...' (30 such
    lines for a wide table), and `--history` showed that check, or an alert on the predictions or the metric
    alone, as 'drifted: -' with no reason."""
    path = tmp_path / "no_z.csv"
    _frame(300)[["x"]].to_csv(path, index=False)
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and "lacks 1 of 2 feature columns (z)" in out and "z: insufficient_data" not in out, out
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--history")
    line = out.strip().splitlines()[-1]
    assert "insufficient_data" in line and "drifted: -; the window lacks 1 of 2 feature columns (z)" in line, out


def test_a_labelled_batch_prints_its_metric_and_why_it_cannot_alert(store, tmp_path, capsys):
    """A labelled batch whose metric collapsed read only 'ok' when it had fewer than 1000 labelled rows: the
    metric and the note saying why it did not alert were in the JSON report alone."""
    path = tmp_path / "labelled.csv"
    frame = _frame(300)
    frame.assign(y=(frame["x"] < 0).astype(int)).to_csv(path, index=False)  # labels the model now gets wrong
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and ": ok" in out.splitlines()[0]
    line = next(x for x in out.splitlines() if x.strip().startswith("performance:"))
    assert line.startswith("  performance: roc_auc 0.0") and "on 300 labelled rows, 0.9000 at training; " \
        "fewer than 1000 labelled rows: too noisy to alert on" in line, out
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path), "--json")
    assert json.loads(out)["performance"]["rows"] == 300


@pytest.mark.parametrize(("labels", "says"), [
    ([0], "not measured on the 300 labelled rows: roc_auc cannot be measured on these labels (ROC-AUC needs "
          "every class among them)"),
    (["no", "yes"], "not measured on the 300 labelled rows: the labels in column 'y' include 'no', 'yes', which "
                    "the model was not trained on (its classes: 0, 1); encode the labels as the training data did"),
    # 1/2 for the model's 0/1: ROC-AUC took 2 as the positive class and 'fell' to 0.1 (an alert with
    # --min-labels 200), a wrong figure for an encoding the model never saw.
    ([1, 2], "not measured on the 300 labelled rows: the labels in column 'y' include 2, which the model was "
             "not trained on (its classes: 0, 1)"),
])
def test_labels_the_metric_cannot_take_are_said_not_dropped(store, tmp_path, capsys, labels, says):
    """Labels of another type than the model's (text for 0/1), or of one class only, dropped the performance
    check without a word; labels of another encoding gave a wrong metric."""
    path = tmp_path / "labelled.csv"
    frame = _frame(300)
    y = np.where(frame["x"] > 0, labels[0], labels[-1]) if labels == [1, 2] else \
        [labels[i % len(labels)] for i in range(300)]
    frame.assign(y=y).to_csv(path, index=False)
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path), "--min-labels", "200")
    assert code == 0 and f"  performance: {says}" in out, out


@pytest.mark.parametrize(("labelled", "says"), [
    (0, "the label column 'y' has no values: fill in the labels to measure roc_auc"),
    (1, "the label column 'y' has only 1 labelled row: roc_auc needs at least 2"),
])
def test_a_label_column_without_enough_values_is_said_not_skipped(store, tmp_path, capsys, labelled, says):
    """A label column all blank, or with one label, printed no performance line and gave "performance":
    null: the check was dropped without a word, where text labels were said to be unscorable."""
    path = tmp_path / "labelled.csv"
    frame = _frame(300)
    frame.assign(y=[1.0] * labelled + [np.nan] * (300 - labelled)).to_csv(path, index=False)
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and f"  performance: not measured: {says}\n" in out, out
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path), "--json")
    performance = json.loads(out)["performance"]
    assert performance["note"] == says and performance["current"] is None and performance["rows"] == labelled


def test_min_labels_lets_a_smaller_labelled_batch_alert(store, tmp_path, capsys):
    """A model that kept no held-out rows needs 1000 labels by default; --min-labels lowers the bar."""
    path = tmp_path / "labelled.csv"
    frame = _frame(300)
    frame.assign(y=(frame["x"] < 0).astype(int)).to_csv(path, index=False)  # labels the model now gets wrong
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path), "--min-labels", "200")
    assert code == 1 and "alert" in out.splitlines()[0] and "roc_auc fell from 0.9000 to 0.0" in out, out
    code, _, err = _orch(capsys, store, "monitor", "tiny", "--history", "--min-labels", "200")
    assert code == 2 and "--min-labels would be ignored" in err


@pytest.mark.parametrize("fails", ["json", "html"])
def test_a_report_that_does_not_fit_on_the_disk_is_one_line_and_leaves_nothing(store, tmp_path, capsys,
                                                                               monkeypatch, fails):
    """A full disk said "No space left on device: ….json.tmp. Check the path or name." and left a partial
    temp file, or a JSON report that the drift history does not list."""
    import errno

    path = tmp_path / "batch.csv"
    _frame(300).to_csv(path, index=False)
    real_write = Path.write_text

    def full(self, text, *args, **kwargs):
        if self.name.startswith(".drift-") and self.name.endswith(f".{fails}.tmp"):
            real_write(self, text[: len(text) // 2], *args, **kwargs)  # as far as it got
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    code, out, err = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    line = _one_error_line(err)
    assert code == 2 and "No space left on device" in line, err
    assert line.endswith("Free some space, then run the same command again.") and "Check the path" not in line
    reports = store / "reports" / "tiny"
    assert not reports.exists() or list(reports.iterdir()) == []
    from orchestrator.monitor import history_rows

    assert history_rows(Context.open(store, create=False), "tiny") == []  # and no check recorded


def test_a_label_column_renamed_on_the_way_is_named_not_silently_skipped(store, tmp_path, capsys):
    """A batch whose label column came back as 'Y' (the model's label is 'y') printed only 'ok': its
    performance check was dropped without a word, as for a batch with no labels at all."""
    path = tmp_path / "labelled.csv"
    frame = _frame(300)
    frame.assign(Y=(frame["x"] > 0).astype(int)).to_csv(path, index=False)
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and "  performance: not measured: the batch has no label column 'y', and its column 'Y' is " \
        "not taken for it: rename it 'y' to measure roc_auc" in out, out
    frame.assign(batch_id=1).to_csv(path, index=False)  # no labels at all: nothing to say
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and "performance" not in out, out
    frame.assign(yy=1).to_csv(path, index=False)  # a merely similar name is another column
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--batch", str(path))
    assert code == 0 and "performance" not in out, out


def _seal(context: Context, name: str, version: int, frames: list[tuple[float, pd.DataFrame]]) -> None:
    """One sealed, indexed segment holding each frame's rows as requests answered from its time on,
    one a second: a segment as a batching server writes it, spanning minutes or hours."""
    from orchestrator.request_log import Segment, encode_requests, index_segments, new_stem, segment_folder

    folder = segment_folder(context.root, name)
    folder.mkdir(parents=True, exist_ok=True)
    text, ats = "", []
    for start, frame in frames:
        for i, record in enumerate(json.loads(frame.to_json(orient="records"))):
            ats.append(start + i)
            text += encode_requests(version, [record], {"prediction": [0]}, ats[-1])
    path = folder / f"{new_stem()}.jsonl"
    path.write_text(text)
    index_segments(context.lineage, [Segment(str(path.relative_to(context.root)), name, version, len(ats),
                                             max(ats))])


def test_since_reads_the_requests_answered_since_then_by_their_own_time(store, capsys):
    """A segment now holds many requests: filtering by its time read every request of a segment that
    ended after --since, however old; each request is kept or left by the time it was answered."""
    import time

    from orchestrator.request_log import read_requests

    now = time.time()
    context = Context.open(store)
    _seal(context, "tiny", 2, [(now - 7200, _frame(300, shift=3.0)), (now - 1200, _frame(300, seed=4))])
    window, _ = read_requests(context, "tiny", version=2, since=now - 3600)
    assert len(window) == 300 and window["x"].mean() < 1  # the drifted hour before is left out
    context.lineage.close()
    code, out, err = _orch(capsys, store, "monitor", "tiny")
    assert code == 1 and "(last 600), 600 rows: alert" in out
    code, out, err = _orch(capsys, store, "monitor", "tiny", "--since", "1h")
    assert code == 0 and "since " in out and "(last 300), 300 rows: ok" in out, out + err
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 600))  # after the last request
    code, out, _ = _orch(capsys, store, "monitor", "tiny", "--since", local, "--json")
    assert code == 0 and json.loads(out)["source"].endswith("(none logged)")
    assert any("since" in r and "give an earlier --since" in r for r in json.loads(out)["reasons"])


@pytest.mark.parametrize("args, problem", [
    (["--since", "yesterday"], "'yesterday' is neither a time ago (30m, 2h, 7d, 1w) nor a date and time"),
    (["--since", "1h", "--batch", "b.csv"], "--since selects served requests, and --batch replaces them"),
    (["--since", "1h", "--history"], "--history shows past checks and runs none, so --since would be ignored"),
])
def test_a_since_that_cannot_be_used_is_one_line(store, capsys, args, problem):
    code, _, err = _orch(capsys, store, "monitor", "tiny", *args)
    assert code == 2 and problem in err and "Traceback" not in err


def test_the_newest_requests_are_taken_across_old_and_batched_segments(store):
    """A store from before batching (one segment per request) keeps reading, beside batched segments
    and the open one of a running server, and --last takes the newest by each request's time."""
    from orchestrator.request_log import index_segments, read_requests, write_segment
    from orchestrator.request_writer import RequestWriter

    context = Context.open(store)
    for x in (1.0, 2.0, 3.0):  # as the server wrote them before: one sealed file and index row each
        index_segments(context.lineage, [write_segment(context.root, "tiny", 2, [{"x": x, "z": 0.0}],
                                                       {"prediction": [0]})])
    sealed: list = []
    writer = RequestWriter(context.root, "tiny", 2, sealed.append, rows=2)
    for x in (4.0, 5.0, 6.0):  # 4 and 5 are sealed together; 6 waits in the open segment
        writer.append([{"x": x, "z": 0.0}], {"prediction": [0]})
    index_segments(context.lineage, sealed)
    assert [s.rows for s in sealed] == [2] and writer.open_path is not None
    everything, _ = read_requests(context, "tiny", version=2)
    assert everything["x"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    for last in (1, 2, 4):
        newest, _ = read_requests(context, "tiny", version=2, limit=last)
        assert newest["x"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0][-last:]
    writer.close()  # the server stops: its open segment is sealed, and the server indexes it
    index_segments(context.lineage, sealed[1:])
    assert [s.rows for s in sealed] == [2, 1] and writer.open_path is None
    assert read_requests(context, "tiny", version=2)[0]["x"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_the_versions_that_served_count_what_a_running_server_has_not_sealed(store):
    """The hint for a version with no requests summed the sealed segments only: `v1 served 308` while the
    monitor of v1 read 358, and a version whose requests were all in the open segment was not named."""
    from orchestrator.monitor import served_by_other_versions
    from orchestrator.request_log import index_segments
    from orchestrator.request_writer import RequestWriter

    context = Context.open(store)
    sealed: list = []
    writer = RequestWriter(context.root, "tiny", 1, sealed.append, rows=2)
    for x in (1.0, 2.0, 3.0):  # 1 and 2 sealed together; 3 waits in the open segment
        writer.append([{"x": x, "z": 0.0}], {"prediction": [0]})
    index_segments(context.lineage, sealed)
    assert served_by_other_versions(context, "tiny", 2) == [(1, 3)]
    writer.close()
    index_segments(context.lineage, sealed[1:])
    assert served_by_other_versions(context, "tiny", 2) == [(1, 3)]  # sealed now: counted once


def _legacy_log(context: Context, requests: int) -> None:
    """Requests of tiny v2 logged as `orch serve` logged them before batching: a file and an index row each."""
    from orchestrator.request_log import index_segments, write_segment

    index_segments(context.lineage, [write_segment(context.root, "tiny", 2, [{"x": float(i), "z": 0.0}],
                                                   {"prediction": [0]}) for i in range(requests)])


def _log_files(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "serving" / "tiny").iterdir() if p.name != ".compaction.lock")


def test_orch_cache_gc_folds_a_request_log_of_one_file_per_request(store, capsys):
    """A store logged before batching kept its millions of one-request files for good."""
    from orchestrator.request_compaction import compact_segments
    from orchestrator.request_log import read_requests

    context = Context.open(store)
    _legacy_log(context, 25)
    before = read_requests(context, "tiny", version=2)[0]["x"].tolist()
    assert compact_segments(context, "tiny", rows=10) == (25, 3)
    assert len(_log_files(store)) == 3 and sorted(r[0] for r in context.lineage.conn.execute(
        "SELECT rows FROM request_segments WHERE name='tiny'")) == [5, 10, 10]
    assert read_requests(context, "tiny", version=2)[0]["x"].tolist() == before
    _legacy_log(context, 2)
    context.lineage.close()
    code, out, _ = _orch(capsys, store, "cache", "gc", "--dry-run")
    assert code in (0, None) and "would fold 5 small request-log segments of tiny" in out
    code, out, _ = _orch(capsys, store, "cache", "gc")
    assert code in (0, None) and "folded 5 small request-log segments of tiny into 1" in out
    assert len(_log_files(store)) == 1
    assert read_requests(Context.open(store), "tiny", version=2)[0]["x"].tolist() == before + [0.0, 1.0]


class _Killed(BaseException):
    """A kill -9 in the middle: nothing after it runs, no cleanup either."""


@pytest.mark.parametrize("point", ["_commit", "_finish", "_name_segment"])
def test_a_compaction_killed_anywhere_loses_no_request_and_counts_none_twice(store, monkeypatch, point):
    """Killed before its commit, after it, or after removing its sources, a compaction leaves a log
    that reads the same, meanwhile and once the next server (or compaction) has tidied up."""
    from orchestrator import request_compaction
    from orchestrator.request_indexer import index_left_over
    from orchestrator.request_log import read_requests

    context = Context.open(store)
    _legacy_log(context, 12)
    expected = read_requests(context, "tiny", version=2)[0]["x"].tolist()

    def killed(*args: Any, **kwargs: Any) -> None:
        raise _Killed

    with monkeypatch.context() as patched:
        patched.setattr(request_compaction, point, killed)
        with pytest.raises(_Killed):
            request_compaction.compact_segments(context, "tiny")
    assert any(n.endswith(".compacting") for n in _log_files(store))
    assert read_requests(context, "tiny", version=2)[0]["x"].tolist() == expected  # a reader meanwhile
    index_left_over(context, "tiny")  # the next server start: finishes or drops it, indexes no source again
    assert not any(n.endswith(".compacting") for n in _log_files(store))
    assert read_requests(context, "tiny", version=2)[0]["x"].tolist() == expected
    assert len(_log_files(store)) == (12 if point == "_commit" else 1)
    request_compaction.compact_segments(context, "tiny")
    assert read_requests(context, "tiny", version=2)[0]["x"].tolist() == expected and len(_log_files(store)) == 1


def test_gc_on_a_full_disk_keeps_its_exit_and_the_log_when_folding_fails(store, capsys, monkeypatch):
    """gc is the command that frees a full disk: a fold that cannot write must not make it fail."""
    import errno

    from orchestrator import request_compaction
    from orchestrator.request_log import read_requests

    context = Context.open(store)
    _legacy_log(context, 3)
    context.lineage.close()

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(request_compaction.os, "fsync", full)
    code, out, err = _orch(capsys, store, "cache", "gc")
    assert code in (0, None) and "removed 0 artifacts" in out
    assert "the request log of tiny was not folded (No space left on device)" in err
    assert len(_log_files(store)) == 3 and len(read_requests(Context.open(store), "tiny", version=2)[0]) == 3


def _serve_keyed(store: Path, ids: list[Any], *, shift: float = 0.0, legacy: int = 0) -> pd.DataFrame:
    """``keyed`` v1 answers one request per id, logged as ``orch serve`` logs them (with each key), after
    ``legacy`` requests logged before keys were (no ``key`` in their lines). Returns the features served."""
    import time

    from orchestrator.request_writer import RequestWriter

    context = Context.open(store)
    frame = _frame(len(ids), shift=shift)
    records = json.loads(frame.to_json(orient="records"))
    if legacy:
        _seal(context, "keyed", 1, [(time.time() - 3600, _frame(legacy, seed=9))])
    writer = RequestWriter(context.root, "keyed", 1, lambda segment: None)
    for i, record in enumerate(records):
        writer.append([record], {"prediction": [0]}, [ids[i]])
    context.lineage.close()  # the writer's segment stays open: read as a live server's
    return frame


def test_labels_that_arrive_later_are_joined_to_the_served_requests_by_key(store, tmp_path, capsys):
    """A served model's outcomes come days later as (id, label): the request log dropped the key, so they
    could not be joined. Each request's key is logged, and --labels measures the live metric on the joined
    rows, counting what matched, what did not, and the labels without a request."""
    ids = [f"C-{i}" for i in range(300)]
    served = _serve_keyed(store, ids)
    labels = tmp_path / "outcomes.csv"
    known = pd.DataFrame({"id": ids[:250] + [f"X-{i}" for i in range(7)],
                          "y": list((served["x"][:250] < 0).astype(int)) + [1] * 7})  # the model now gets it wrong
    known.to_csv(labels, index=False)
    code, out, err = _orch(capsys, store, "monitor", "keyed", "--labels", str(labels))
    assert code == 1 and "alert" in err, out + err
    assert out.splitlines()[0].startswith(f"keyed v1: served requests of v1 (last 300), labels {labels}: 250 "
                                          "matched, 50 unmatched, 7 labels without a request, 250 rows: alert")
    assert any(line.strip().startswith("roc_auc ") for line in out.splitlines()), out
    code, out, _ = _orch(capsys, store, "monitor", "keyed", "--labels", str(labels), "--json")
    doc = json.loads(out)
    assert doc["labels"] == {"file": str(labels), "key": "id", "matched": 250, "unmatched": 50,
                             "labels_without_request": 7}
    assert doc["performance"]["rows"] == 250 and doc["performance"]["current"] < 0.1
    assert doc["performance"]["p_value"] < 0.01 and "reference_unreliable" not in doc["performance"]
    code, out, _ = _orch(capsys, store, "monitor", "keyed", "--history")
    assert "250 matched, 50 unmatched" in out.splitlines()[-1] and "250 rows" in out.splitlines()[-1]


def test_labels_join_numbers_read_as_floats_and_requests_logged_before_keys(store, tmp_path, capsys):
    """Ids posted as integers, labels read from a CSV with a blank (floats, 7.0): the same ids. Lines
    logged before keys were still read, and count as unmatched."""
    served = _serve_keyed(store, list(range(100)), legacy=20)
    labels = tmp_path / "outcomes.parquet"
    pd.DataFrame({"id": [float(i) for i in range(100)] + [None],
                  "y": [float(v) for v in (served["x"] > 0).astype(int)] + [1.0]}).to_parquet(labels)
    code, out, _ = _orch(capsys, store, "monitor", "keyed", "--labels", str(labels), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["labels"]["matched"] == 100 and doc["labels"]["unmatched"] == 20
    assert doc["performance"]["current"] > 0.9  # labels 1.0/0.0 scored as the 1/0 the model was trained on


@pytest.mark.parametrize(("model", "columns", "says"), [
    ("tiny", {"id": ["C-0"], "y": [1]}, "tiny v2 has no key column, so its served requests cannot be joined"),
    ("keyed", {"ID": ["C-0"], "y": [1]}, "has no key column 'id' (did you mean 'ID'?)"),
    ("keyed", {"id": ["C-0"], "yy": [1]}, "has no label column 'y' (did you mean 'yy'?)"),
    ("keyed", {"id": ["Z-1"], "y": [1]}, "no served request of keyed v1 matched a label in"),
])
def test_labels_that_cannot_be_joined_are_one_line(store, tmp_path, capsys, model, columns, says):
    _serve_keyed(store, ["C-0", "C-1"])
    labels = tmp_path / "outcomes.csv"
    pd.DataFrame(columns).to_csv(labels, index=False)
    code, _, err = _orch(capsys, store, "monitor", model, "--labels", str(labels))
    assert code == 2 and says in _one_error_line(err)


def test_labels_for_a_version_that_served_nothing_name_the_version_that_did(built, store, tmp_path, capsys):
    """After a promotion the new version has served nothing yet, and the labels are of the old one's
    requests: the line told the user to check the file's keys and widen --since or --last (no fix); it
    says the version served nothing and names the command that joins the labels to the version that did."""
    import time

    context = Context.open(store)
    _seal(context, "keyed", 1, [(time.time() - 7200, _frame(40))])
    context.lineage.close()
    assert built["pipeline"].run(store=str(store), model_name="keyed", key="id", seed=1).status == "succeeded"
    labels = tmp_path / "outcomes.csv"
    pd.DataFrame({"id": ["C-0"], "y": [1]}).to_csv(labels, index=False)
    code, _, err = _orch(capsys, store, "monitor", "keyed@2", "--labels", str(labels))
    line = _one_error_line(err)
    assert code == 2 and "no served request of keyed v2 matched a label in" in line
    assert "no requests served by it are logged: serve it with `orch serve keyed@2`" in line
    assert f"v1 served 40 (`orch monitor keyed@1 --labels {labels}`)" in line and "Check that" not in line
    code, _, err = _orch(capsys, store, "monitor", "keyed@2", "--labels", str(labels), "--since", "1h")
    assert code == 2 and "served 40 (`orch monitor keyed@1 --labels" in _one_error_line(err)  # no --since helps
    code, out, _ = _orch(capsys, store, "monitor", "keyed@2", "--since", "1h", "--json")  # so without --labels
    assert code == 0 and any("serve it with `orch serve keyed@2`" in r and "v1 served 40" in r
                             for r in json.loads(out)["reasons"]), out
    code, _, err = _orch(capsys, store, "monitor", "keyed@1", "--labels", str(labels), "--since", "1h")
    line = _one_error_line(err)
    assert code == 2 and "no requests of it are logged since " in line and "give an earlier --since" in line


def test_labels_with_batch_or_history_are_refused(built, tmp_path, capsys):
    code, _, err = _orch(capsys, built["store"], "monitor", "keyed", "--labels", "l.csv", "--batch", "b.csv")
    assert code == 2 and "--labels joins outcomes to the served requests, and --batch" in _one_error_line(err)
    code, _, err = _orch(capsys, built["store"], "monitor", "keyed", "--labels", "l.csv", "--history")
    assert code == 2 and "--labels would be ignored" in _one_error_line(err)
