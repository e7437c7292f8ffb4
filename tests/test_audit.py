"""A model version's audit trail lists each computation once, with the run that computed it."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.audit import audit_version
from orchestrator.cli import main
from orchestrator.context import Context
from orchestrator.loader import load_pipeline
from orchestrator.registry import Registry

# `package` reads `rows` through `features` and directly: a second run, of another C, reuses both
# cached, and the walk meets `rows` first through `features`, in the run that computed it, then in its own.
CHAIN = textwrap.dedent('''
    from pathlib import Path

    import pandas as pd

    from orchestrator import pipeline, step
    from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


    @step
    def rows(path: Path, n: int) -> pd.DataFrame:
        scale = float(path.read_text())
        return pd.DataFrame({"x": [i * scale for i in range(n)], "y": [0, 0, 0, 1, 0, 1, 1, 1] * (n // 8)})


    @step
    def features(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[["x"]]


    @step
    def package(feats: pd.DataFrame, frame: pd.DataFrame, c: float) -> ModelCandidate:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c).fit(feats, frame["y"])
        return ModelCandidate("chain", model, "classification", describe_schema(feats), "y",
                              evaluate("classification", model, feats, frame["y"]), "accuracy", 0.0,
                              model_digest(model), eval_data=frame, reference=feats)


    @pipeline
    def chain(path: Path = Path("scale.txt"), n: int = 8, c: float = 1.0):
        frame = rows(path, n)
        return package(features(frame), frame, c=c)
''')


@pytest.fixture
def versions(tmp_path, monkeypatch):
    """A store with model `chain` v1 (C=1) and v2 (C=0.5, `rows` and `features` reused cached)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scale.txt").write_text("1.0")
    (tmp_path / "chain.py").write_text(CHAIN)
    chain = load_pipeline(str(tmp_path / "chain.py"))
    store = tmp_path / "store"
    runs = [chain.run(store=str(store), c=c) for c in (1.0, 0.5)]
    assert [r.status for r in runs] == ["succeeded", "succeeded"], runs[-1].error
    assert runs[1].steps["rows"].status == runs[1].steps["features"].status == "cached"
    return store, runs


def test_each_upstream_computation_is_listed_once_with_the_run_that_computed_it(versions):
    store, (first, second) = versions
    lineage = Context.open(store).lineage
    doc = audit_version(lineage, Registry(lineage).resolve("chain@2"))
    steps = {s["step"]: s for s in doc["steps"]}
    assert [s["step"] for s in doc["steps"]] == ["rows", "features", "package"]  # `rows` once, pipeline order
    assert steps["package"]["computed_in"] == steps["package"]["run_id"] == second.id
    assert steps["rows"]["computed_in"] == steps["features"]["computed_in"] == first.id
    assert steps["rows"]["run_id"] == steps["features"]["run_id"] == second.id  # both cached in the model's run
    assert steps["rows"]["params"] == {"path": "scale.txt", "n": 8} and steps["rows"]["code"]
    assert "<self>" in steps["rows"]["code_parts"]  # which project code (helpers) made the fingerprint


def test_models_show_names_the_run_each_step_was_computed_in(versions, capsys):
    store, (first, second) = versions
    with pytest.raises(SystemExit) as done:
        main(["--store", str(store), "models", "show", "chain@2"])
    out = capsys.readouterr().out
    assert done.value.code in (0, None)
    lines = [line for line in out.splitlines() if line.lstrip().startswith("step ")]
    assert len(lines) == 3
    assert any(line.startswith("  step      features  code ") and
               line.endswith(f"  run {first.id} (cached in run {second.id})") for line in lines)
    assert any(line.startswith("  step      package  code ") and line.endswith(f"  run {second.id}")
               for line in lines)


def test_training_data_says_when_the_file_no_longer_holds_it(versions, capsys):
    """The file at a model's training-data path today may not be what it was trained on: it says so."""
    store, _ = versions
    lineage = Context.open(store).lineage
    path = str(store.parent / "scale.txt")
    data = audit_version(lineage, Registry(lineage).resolve("chain@2"))["training_data"]
    assert [(d["path"], "now" in d) for d in data] == [(path, False)]
    (store.parent / "scale.txt").write_text("2.0")
    data = audit_version(lineage, Registry(lineage).resolve("chain@2"))["training_data"]
    assert [(d["path"], d.get("now")) for d in data] == [(path, "changed since")]
    with pytest.raises(SystemExit):
        main(["--store", str(store), "models", "show", "chain@2"])
    assert f"  data      {path}  ({data[0]['digest']}, changed since)" in capsys.readouterr().out.splitlines()
    (store.parent / "scale.txt").unlink()
    data = audit_version(lineage, Registry(lineage).resolve("chain@2"))["training_data"]
    assert data[0]["now"] == "gone since"
