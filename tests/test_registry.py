"""The model registry from a user's side: references, candidate checks, promote/rollback, load_model, serve.

One tiny pipeline (a logistic regression on eight rows, written to tmp) is run
into a module store, so every test is fast. The CLI is driven in-process
through ``orchestrator.cli.main``, which maps errors to one line and an exit
code exactly as ``orch`` does.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.context import Context
from orchestrator.errors import NotFoundError, ParameterError, UserError
from orchestrator.loader import load_pipeline
from orchestrator.registry import (
    InvalidCandidateError,
    ModelCandidate,
    Registry,
    check_gate_settings,
    describe_schema,
    evaluate,
    load_model,
    model_digest,
    parse_ref,
)

from .conftest import copy_store

TINY = textwrap.dedent('''
    """A model candidate from eight rows (repeated); `mutate` breaks it after its checks, as an old pickle could be."""
    import pandas as pd

    from orchestrator import pipeline, step
    from orchestrator.registry import ModelCandidate, describe_schema, evaluate, model_digest


    @step
    def package(c: float, task: str, metric: str, margin: float, mutate: str) -> ModelCandidate:
        """A logistic regression with C=c (accuracy 0.75), or, for c=0, a weak threshold model (0.625).

        A constant model (0.5, the majority class) would not pass the gate even as the first version.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.tree import DecisionTreeClassifier

        # Eight rows, each eight times: the gate refuses a figure measured on fewer than 50 test rows.
        frame = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5, 6, 7] * 8, "y": [0, 0, 0, 1, 0, 1, 1, 1] * 8})
        model = (LogisticRegression(C=c).fit(frame[["x"]], frame["y"]) if c else
                 DecisionTreeClassifier(max_depth=1).fit(frame[["x"]], (frame["x"] >= 1).astype(int)))
        candidate = ModelCandidate(
            "tiny", model, task, describe_schema(frame[["x"]]), "y",
            evaluate("classification", model, frame[["x"]], frame["y"]), metric, margin, model_digest(model),
            eval_data=frame, reference=frame[["x"]])
        if mutate:
            object.__setattr__(candidate, "metric", mutate)  # skips __post_init__, like an unpickled value
        return candidate


    @pipeline
    def tiny(c: float = 1.0, task: str = "classification", metric: str = "accuracy", margin: float = 0.0,
             mutate: str = ""):
        return package(c=c, task=task, metric=metric, margin=margin, mutate=mutate)
''')


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private signing key for the whole module (module fixtures run outside function monkeypatches)."""
    base = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.delenv("ORCH_SIGNING_KEY", raising=False)
        yield base


@pytest.fixture(scope="module")
def tiny(env):
    path = env / "tiny.py"
    path.write_text(TINY)
    return load_pipeline(str(path))


@pytest.fixture(scope="module")
def models(env, tiny):
    """A store with model `tiny`: v1 (weak), v2 (C=1, better: promoted), v3 (C=0.1, no better: refused)."""
    store = env / "store"
    for c in (0.0, 1.0, 0.1):
        run = tiny.run(store=str(store), c=c)
        assert run.status == "succeeded", run.error
    return store


@pytest.fixture
def store(models, tmp_path):
    """A copy of the module store, free to change (other tests keep its database open)."""
    return copy_store(models, tmp_path / "store")


def orch(store: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``orch --store STORE ARGS`` run in this process."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--store", str(store), *args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def one_line_error(code: int, err: str, text: str, exit_code: int = 2) -> bool:
    return code == exit_code and text in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- references ---------------------------------------------------------------


@pytest.mark.parametrize(("ref", "expected"), [
    ("churn", ("churn", "production")), ("churn@production", ("churn", "production")),
    ("churn@latest", ("churn", "latest")), ("churn@3", ("churn", 3)), ("churn@v3", ("churn", 3)),
    ("churn@V12", ("churn", 12)),
])
def test_parse_ref_accepts_the_documented_forms(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize(("ref", "text"), [
    ("tiny@99999999999999999999", "out of range"),  # SQLite raised OverflowError on this
    ("tiny@" + "9" * 5000, "out of range"),  # int() refuses this many digits
    ("tiny@0", "out of range"),
    ("tiny@٣", "not a model reference"),  # Arabic-Indic 3: str.isdigit() says yes
    ("tiny@²", "not a model reference"),
    ("tiny@", "nothing after '@'"),  # used to mean production, silently
    ("@2", "names no model"),
    ("tiny@Production", "Did you mean 'tiny@production'?"),
    ("TINY", "no model 'TINY' in this store. Did you mean 'tiny'?"),
    ("tiny@4", "has no version 4; it has 1, 2, 3"),
])
@pytest.mark.parametrize("command", [("models", "show"), ("models", "promote"), ("lineage",)])
def test_a_bad_reference_is_one_line_and_exit_2(store, capsys, command, ref, text):
    if ref == "TINY":  # promote needs a version; lineage reads a bare word as a run id
        ref = "TINY@1"
    code, _, err = orch(store, *command, ref, capsys=capsys)
    assert one_line_error(code, err, text), (code, err)
    assert "NAME, NAME@VERSION, NAME@production" in err or "version" in err or "model" in err


def test_serve_uses_the_same_reference_parser(store, capsys):
    pytest.importorskip("fastapi")
    for ref, text in [("tiny@٣", "not a model reference"), ("tiny@", "nothing after '@'"),
                      ("TINY", "Did you mean 'tiny'?"), ("tiny@99999999999999999999", "out of range")]:
        code, _, err = orch(store, "serve", ref, capsys=capsys)
        assert one_line_error(code, err, text), (ref, code, err)


def test_lineage_of_a_bare_model_name_suggests_its_production_version(store, capsys):
    code, _, err = orch(store, "lineage", "TINY", capsys=capsys)
    assert one_line_error(code, err, "Did you mean 'tiny@production'?"), (code, err)


def test_load_model_parses_references_strictly(models):
    with pytest.raises(UserError, match="nothing after '@'"):
        load_model("tiny@", store=models)
    with pytest.raises(UserError, match="out of range"):
        load_model("tiny@99999999999999999999", store=models)


# -- candidates are checked before anything is written -------------------------


def _candidate(**changes: Any) -> ModelCandidate:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1, 2, 3], "y": [0, 0, 1, 1]})
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    fields = {"name": "m", "model": model, "task": "classification", "features": describe_schema(frame[["x"]]),
              "label": "y", "metrics": {"accuracy": 1.0}, "metric": "accuracy", "margin": 0.0,
              "model_digest": model_digest(model), "eval_data": frame}
    return ModelCandidate(**{**fields, **changes})


def test_evaluate_scores_text_labels_like_the_same_labels_as_numbers():
    """A label column of "no"/"yes" failed every candidate: f1_score's default pos_label=1 is not a label."""
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5, 6, 7], "y": [0, 0, 0, 1, 0, 1, 1, 1]})
    words = frame["y"].map({0: "no", 1: "yes"})
    as_numbers = evaluate("classification", LogisticRegression().fit(frame[["x"]], frame["y"]), frame[["x"]],
                          frame["y"])
    as_words = evaluate("classification", LogisticRegression().fit(frame[["x"]], words), frame[["x"]], words)
    assert as_words == as_numbers and as_numbers["f1"] > 0


@pytest.mark.parametrize(("changes", "text"), [
    ({"metric": "bogus"}, "the gate metric 'bogus' is not in its metrics (accuracy)"),
    ({"metric": "Accuracy"}, "did you mean 'accuracy'?"),
    # evaluate() leaves roc_auc out when the test rows of a rare class hold none of it: it read like a typo.
    ({"metric": "roc_auc"}, "the gate metric 'roc_auc' is not in its metrics (accuracy): ROC-AUC needs every class "
                            "among the evaluation rows (a rare class may have none in a small test set"),
    ({"task": "clasification"}, "task 'clasification' is not one of classification, regression "
                                "(did you mean 'classification'?)"),
    ({"metrics": {"accuracy": "high"}}, "metrics accuracy are not numbers"),
    ({"metrics": {"accuracy": float("nan")}}, "the gate metric accuracy is nan, not a finite number"),
    ({"margin": -0.01}, "margin -0.01 is negative"),
    ({"margin": float("inf")}, "margin inf is not a finite number"),
    ({"margin": "0.1"}, "margin '0.1' is not a number"),
    ({"name": "my model"}, "name 'my model' is not usable"),
    ({"model": object()}, "has no predict method"),
    # A regression model left with the template's task='classification' was registered, and monitoring
    # then scored it as a classifier and silently dropped its performance check.
    ({"metrics": {"rmse": 0.5}, "metric": "rmse"}, "the gate metric rmse is a regression metric, but task is "
                                                   "'classification': use task='regression', or a "
                                                   "classification metric (accuracy, f1, roc_auc, balanced_accuracy)"),
    ({"task": "regression"}, "the gate metric accuracy is a classification metric, but task is 'regression'"),
])
def test_an_invalid_candidate_is_refused_with_one_line(changes, text):
    with pytest.raises(InvalidCandidateError) as refused:
        _candidate(**changes)
    message = str(refused.value)
    assert text in message and "\n" not in message and message.startswith("model candidate")


def test_every_problem_of_a_candidate_is_named_at_once():
    with pytest.raises(InvalidCandidateError) as refused:
        _candidate(task="clasification", metric="bogus", margin=-1)
    assert all(t in str(refused.value) for t in ("task 'clasification'", "'bogus'", "margin -1 is negative"))


def test_a_step_making_an_invalid_candidate_fails_the_run_and_registers_nothing(env, tiny, tmp_path, capsys):
    store = tmp_path / "store"
    code, _, err = orch(store, "run", str(env / "tiny.py"), "-p", "task=clasification", capsys=capsys)
    assert code == 1 and "did you mean 'classification'?" in err and "Traceback" not in err
    assert "step 'package' failed" in err.strip().splitlines()[-1]
    assert Registry(Context.open(store).lineage).names() == []


def test_orch_run_ends_with_the_model_and_its_gate_verdict(env, store, capsys):
    """A run whose model the gate refused ended like one that deployed it: 'run … succeeded'. The verdict
    was only in `orch show`."""
    code, _, err = orch(store, "run", str(env / "tiny.py"), "-p", "c=0.5", capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 0 and " succeeded (1 ran)" in lines[-3] and lines[-2] == "model: tiny@4", err
    assert lines[-1].startswith("gate: registered, not promoted: accuracy ") and "vs production v2" in lines[-1]


def test_a_candidate_that_skipped_its_checks_is_refused_before_registration(tiny, tmp_path):
    """A candidate made without ``__init__`` (an older pickle) is checked again by the driver."""
    store = tmp_path / "store"
    run = tiny.run(store=str(store), mutate="bogus")
    assert run.status == "failed"
    assert "InvalidCandidateError" in run.steps["package"].error
    assert "the gate metric 'bogus' is not in its metrics" in run.steps["package"].error
    lineage = Context.open(store).lineage
    assert lineage.rows("SELECT * FROM model_versions", ()) == []  # no version left without a verdict
    assert lineage.rows("SELECT * FROM model_events", ()) == []


@pytest.mark.parametrize(("task", "metric", "margin", "text"), [
    ("classification", "bogus", 0.0, "metric 'bogus' is not measured for classification; use one of accuracy, "
                                     "f1, roc_auc"),
    ("classification", "rmse", 0.0, "metric 'rmse' is not measured for classification"),
    ("classification", "roc-auc", 0.0, "did you mean 'roc_auc'?"),
    ("regression", "rmse", -0.01, "margin -0.01 is negative"),
    ("regresion", "rmse", 0.0, "did you mean 'regression'?"),
])
def test_gate_settings_are_checked_before_a_pipeline_runs(task, metric, margin, text):
    with pytest.raises(ParameterError, match="^" + ".*" + text.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        check_gate_settings(task, metric, margin)
    check_gate_settings("regression", "rmse", 0.0)


# -- promote and rollback -------------------------------------------------------


def _events(store: Path) -> list[tuple[str, int, int | None]]:
    return [(e["action"], e["version"], e["previous"]) for e in Registry(Context.open(store).lineage).events("tiny")]


def test_the_module_store_has_three_versions_and_v2_in_production(models):
    registry = Registry(Context.open(models).lineage)
    assert [v["version"] for v in registry.versions("tiny")] == [1, 2, 3]
    assert registry.production("tiny") == 2


def test_models_show_json_gives_each_versions_registration_as_the_audit_does(models, capsys):
    """`registered` in the version list was local time without an offset ('2026-11-27 22:11:30'): another hour
    from another time zone, and another form than `orch models show NAME@VERSION --json` gives the same moment."""
    from datetime import datetime

    code, out, _ = orch(models, "models", "show", "tiny", "--json", capsys=capsys)
    assert code == 0
    listed = {v["version"]: v["registered"] for v in json.loads(out)["versions"]}
    for version, registered in listed.items():
        assert datetime.fromisoformat(registered).tzinfo is not None, registered
        code, out, _ = orch(models, "models", "show", f"tiny@{version}", "--json", capsys=capsys)
        assert json.loads(out)["registered"] == registered


def test_show_and_logs_given_a_model_name_the_run_that_trained_it(models, capsys):
    """orch diff takes tiny@2 for the run that trained it, and orch serve a bare tiny; orch show and
    orch logs said "no run 'tiny@2' in this store". The line names the training run and the audit."""
    trained = {v["version"]: v["run_id"] for v in Registry(Context.open(models).lineage).versions("tiny")}
    code, _, err = orch(models, "show", "tiny@1", capsys=capsys)
    assert code == 2 and err.count("\n") == 1
    assert err == (f"error: 'tiny@1' is a model version, not a run: run {trained[1]} trained it "
                   f"(`orch show {trained[1]}`), and `orch models show tiny@1` gives its audit trail.\n")
    code, _, err = orch(models, "logs", "tiny:fit", capsys=capsys)
    assert code == 2 and err.startswith("error: 'tiny' is a model, not a run; its production version is v2: "
                                        f"run {trained[2]} trained it")
    code, _, err = orch(models, "show", "nosuch", capsys=capsys)
    assert code == 2 and err == "error: no run 'nosuch' in this store. List runs with `orch runs`.\n"


def test_promoting_the_production_version_changes_nothing(store, capsys):
    before = _events(store)
    code, out, _ = orch(store, "models", "promote", "tiny@2", capsys=capsys)
    assert code == 0 and "v2 is already production; nothing changed" in out
    assert _events(store) == before


def test_rollback_goes_to_the_previous_distinct_version_then_says_there_is_none(store, capsys):
    orch(store, "models", "promote", "tiny@2", capsys=capsys)  # a no-op: must not count as a promotion
    code, out, _ = orch(store, "models", "rollback", "tiny", capsys=capsys)
    assert code == 0 and "from v2 to v1" in out
    code, _, err = orch(store, "models", "rollback", "tiny", capsys=capsys)
    assert one_line_error(code, err, "no production version before v1 to roll back to")
    assert Registry(Context.open(store).lineage).production("tiny") == 1


def test_rollback_skips_repeated_promotions_that_older_stores_recorded(store, capsys):
    """Before promote was a no-op, promoting production again wrote a second 'promoted' event."""
    from orchestrator.registry import _event

    lineage = Context.open(store).lineage
    with lineage.transaction() as c:
        _event(c, "tiny", 2, 2, "promoted by hand", None, None)
    code, out, _ = orch(store, "models", "rollback", "tiny", capsys=capsys)
    assert code == 0 and "from v2 to v1" in out


def test_rollback_walks_back_through_hand_promotions(store, capsys):
    for ref in ("tiny@3", "tiny@1"):
        orch(store, "models", "promote", ref, capsys=capsys)
    outs = [orch(store, "models", "rollback", "tiny", capsys=capsys)[1] for _ in range(3)]
    assert ["from v1 to v3" in outs[0], "from v3 to v2" in outs[1], "from v2 to v1" in outs[2]] == [True] * 3


def test_a_gate_judges_against_the_version_another_process_promoted_meanwhile(env, store, capsys, monkeypatch):
    """Two terminals: while a run's gate scored its candidate against production v2, another process
    promoted v1. The verdict was still recorded against v2 ('vs production v2', refused), so the worse v1
    stayed in production and the gate's reason named a version that was no longer production."""
    import subprocess
    import sys

    from orchestrator import registry as registry_module

    judged, judge = [], registry_module.judge

    def judge_while_another_process_promotes(candidate, production, production_version, recorded=None,
                                             evidence=None):
        if not judged:  # the first verdict is overtaken: `orch models promote tiny@1` in another terminal
            done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), "models", "promote",
                                   "tiny@1"], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
            assert done.returncode == 0, done.stderr
        judged.append(production_version)
        return judge(candidate, production, production_version, recorded, evidence)

    monkeypatch.setattr(registry_module, "judge", judge_while_another_process_promotes)
    code, _, err = orch(store, "run", str(env / "tiny.py"), "-p", "c=0.5", capsys=capsys)
    assert code == 0 and judged == [2, 1], err
    assert err.strip().splitlines()[-1].startswith("gate: promoted to production: accuracy ")
    assert "vs production v1" in err.strip().splitlines()[-1]
    registry = Registry(Context.open(store).lineage)
    assert registry.production("tiny") == 4
    assert registry.version("tiny", 4)["gate"]["production_version"] == 1
    assert _events(store)[-1] == ("promoted", 4, 1)


def test_the_same_model_from_two_runs_at_once_is_gated_once(env, store, capsys, monkeypatch):
    """Two terminals run the same pipeline: both make the same model, registered once as v4. The second
    run to finish found v4 without a verdict yet (the first was still scoring it) and gated it too, so
    the registry held two verdicts for it, and a promotion could be recorded twice."""
    import subprocess
    import sys

    from orchestrator import registry as registry_module

    judged, judge = [], registry_module.judge

    def judge_while_another_run_gates(candidate, production, production_version, recorded=None, evidence=None):
        if not judged:  # the same run in another terminal, which ends (and gates v4) while this one scores
            done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), "run",
                                   str(env / "tiny.py"), "-p", "c=0.5"], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
            assert done.returncode == 0 and "model: tiny@4" in done.stderr, done.stderr
        judged.append(production_version)
        return judge(candidate, production, production_version, recorded, evidence)

    monkeypatch.setattr(registry_module, "judge", judge_while_another_run_gates)
    code, _, err = orch(store, "run", str(env / "tiny.py"), "-p", "c=0.5", capsys=capsys)
    assert code == 0 and judged == [2], err
    assert err.strip().splitlines()[-1].startswith(
        "gate: already registered as version 4 (registered); gate not re-applied; its gate: accuracy "), err
    assert [e for e in _events(store) if e[1] == 4] == [("registered", 4, None), ("refused", 4, 2)]


def test_a_rollback_while_another_terminal_promotes_rolls_back_from_the_new_version(store, capsys, monkeypatch):
    """`orch models rollback tiny` read the history with v2 in production; before it wrote, another terminal
    promoted v3. The rollback still set v1 and recorded it as 'from v2', so v3 vanished from production
    without a trace in the history."""
    import subprocess
    import sys

    promoted, events = [], Registry.events

    def events_while_another_terminal_promotes(self, name):
        found = events(self, name)
        if not promoted:
            done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), "models", "promote",
                                   "tiny@3"], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
            assert done.returncode == 0, done.stderr
            promoted.append(3)
        return found

    monkeypatch.setattr(Registry, "events", events_while_another_terminal_promotes)
    code, out, err = orch(store, "models", "rollback", "tiny", capsys=capsys)
    assert code == 0 and "from v3 to v2" in out, (out, err)
    assert Registry(Context.open(store).lineage).production("tiny") == 2
    assert _events(store)[-2:] == [("promoted by hand", 3, 2), ("rolled back", 2, 3)]


def test_rollback_takes_a_model_name_not_a_version(store, capsys):
    code, _, err = orch(store, "models", "rollback", "tiny@2", capsys=capsys)
    assert one_line_error(code, err, "rollback takes a model name, not a version")


# -- load_model -------------------------------------------------------------------


def test_load_model_never_creates_a_store(tmp_path):
    where = tmp_path / "nonexistent"
    with pytest.raises(NotFoundError, match="no store at"):
        load_model("tiny", store=where)
    assert not where.exists()


def test_predict_names_the_missing_columns_and_the_expected_ones(models):
    model = load_model("tiny", store=models)
    with pytest.raises(UserError, match=r"the frame has no column x; the model expects x \(its training schema\)"):
        model.predict(pd.DataFrame({"z": [1.0]}))
    assert model.predict(pd.DataFrame({"x": [0.0, 7.0], "extra": ["ignored", "too"]}))["prediction"] == [0, 1]


def test_a_model_of_a_store_copied_to_another_machine_names_the_key_not_a_retrain(models, monkeypatch):
    """A copied store keeps its objects, not the key that signed them: the fix is that key, not damage."""
    from orchestrator.errors import StoreError

    monkeypatch.setenv("ORCH_SIGNING_KEY", "the-other-machines-key")
    with pytest.raises(StoreError) as caught:
        load_model("tiny", store=models)
    message = str(caught.value)
    assert "is not trusted" in message and "signs with the key of $ORCH_SIGNING_KEY" in message
    assert "set ORCH_SIGNING_KEY to that key" in message and "finds the damage" not in message
    monkeypatch.delenv("ORCH_SIGNING_KEY")
    assert load_model("tiny", store=models).predict(pd.DataFrame({"x": [7.0]}))["prediction"] == [1]


def test_loading_a_copied_store_without_a_key_creates_none(models, tmp_path, monkeypatch):
    """With no key here, a model signed elsewhere is not trusted, and no key is made just to check it."""
    from orchestrator.errors import StoreError

    copied = copy_store(models, tmp_path / "copied")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "fresh"))
    with pytest.raises(StoreError) as caught:
        load_model("tiny", store=copied)
    message = str(caught.value)
    assert "is not trusted (no signing key here to check it" in message and "set ORCH_SIGNING_KEY" in message
    assert not (tmp_path / "fresh").exists()


def test_cache_verify_repair_without_a_key_removes_no_pickled_artifact(env, store, tmp_path, monkeypatch, capsys):
    """No key here: every signature would fail, which is no damage, and --repair removed every model."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "fresh"))
    code, out, err = orch(store, "cache", "verify", "--repair", "--json", capsys=capsys)
    report = json.loads(out)
    assert code == 0 and report["damaged"] == [] and report["signatures_checked"] is False
    assert "pickled artifacts were not checked: no signing key here" in err and "ORCH_SIGNING_KEY" in err
    assert not (tmp_path / "fresh").exists()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env / "config"))  # the key that signed them: all still load
    assert load_model("tiny", store=store).name == "tiny"
    code, out, err = orch(store, "cache", "verify", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["signatures_checked"] is True and "not checked" not in err


def test_a_run_on_a_copied_store_without_a_key_signs_with_a_new_one(tiny, models, tmp_path, monkeypatch):
    """The run, which writes signed artifacts, creates the key; the model it could not check is recomputed."""
    copied = copy_store(models, tmp_path / "copied")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "fresh"))
    run = tiny.run(store=str(copied), c=1.0)
    assert run.status == "succeeded", run.error
    assert run.steps["package"].reason.startswith("stored output was signed with another key")
    assert (tmp_path / "fresh" / "orchestrator" / "signing.key").is_file()
    assert tiny.run(store=str(copied), c=1.0).steps["package"].status == "cached"
    assert load_model("tiny", store=copied).name == "tiny"


# -- orch serve: binding ----------------------------------------------------------


@pytest.fixture
def busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


def test_serve_on_a_busy_port_is_one_line_naming_host_and_port(store, capsys, busy_port):
    pytest.importorskip("uvicorn")
    code, _, err = orch(store, "serve", "tiny", "--port", str(busy_port), capsys=capsys)
    assert one_line_error(code, err, f"port {busy_port} on 127.0.0.1 is in use"), err
    assert "pass --port" in err


@pytest.fixture
def busy_ports():
    """Two neighbouring ports, both taken: the one asked for and the next one."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            first.listen(1)
            second.listen(1)
            yield port
            return
    pytest.skip("no two neighbouring free ports")


def test_serve_on_a_busy_port_suggests_a_port_that_is_free(store, capsys, busy_ports):
    """The next port was suggested without looking: it was in use too."""
    import re

    pytest.importorskip("uvicorn")
    code, _, err = orch(store, "serve", "tiny", "--port", str(busy_ports), capsys=capsys)
    assert one_line_error(code, err, f"port {busy_ports} on 127.0.0.1 is in use"), err
    suggested = re.search(r"pass --port (\d+) \(free now\) or --port 0 \(any free port\)", err)
    assert suggested, err
    port = int(suggested.group(1))
    assert port not in (busy_ports, busy_ports + 1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free indeed


@pytest.mark.parametrize(("host", "text"), [
    ("999.1.1.1", "host '999.1.1.1' does not resolve"),
    ("192.0.2.1", "192.0.2.1 is not an address of this machine"),  # TEST-NET-1: never local
])
def test_serve_on_a_bad_host_is_one_line(store, capsys, host, text):
    pytest.importorskip("uvicorn")
    code, _, err = orch(store, "serve", "tiny", "--host", host, "--port", "8765", capsys=capsys)
    assert one_line_error(code, err, text), err
    assert f"cannot serve on {host}:8765" in err and "--host 127.0.0.1" in err


def test_a_model_of_the_other_task_is_refused_under_an_existing_name(tmp_path):
    """A copied pipeline that kept the default model_name registered a regression model as churn@2 and
    promoted it over the churn classifier ('production v1 has no rmse')."""
    from sklearn.linear_model import LinearRegression

    registry = Registry(Context.open(tmp_path / "store").lineage)
    assert registry.register(_candidate(), "a" * 32, None, None) == (1, True)
    frame = pd.DataFrame({"x": [0.0, 1, 2, 3], "y": [0.5, 1.5, 2.5, 3.5]})
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    regression = _candidate(model=model, task="regression", metrics={"rmse": 0.0}, metric="rmse",
                            model_digest=model_digest(model), eval_data=frame)
    with pytest.raises(InvalidCandidateError) as refused:
        registry.register(regression, "b" * 32, None, None)
    assert str(refused.value) == (
        "model candidate 'm' cannot be registered: the versions of 'm' (v1) are classification models, and this "
        "one is a regression model. Give it a name of its own (ModelCandidate(name=...); in the lifecycle "
        "pipeline, -p model_name=...).")
    assert [v["version"] for v in registry.versions("m")] == [1]
    assert registry.register(_candidate(name="m_price", model=model, task="regression", metrics={"rmse": 0.0},
                                        metric="rmse", model_digest=model_digest(model)), "b" * 32, None, None) \
        == (1, True)


def test_a_candidate_sharing_no_feature_with_production_is_refused_under_its_name(tmp_path):
    """An edited copy of the lifecycle pipeline trained on another table kept model_name=churn: its model
    was registered as churn@N and could be promoted over the churn model that serving feeds churn records."""
    from sklearn.linear_model import LogisticRegression

    registry = Registry(Context.open(tmp_path / "store").lineage)
    assert registry.register(_candidate(), "a" * 32, None, None) == (1, True)
    registry.promote("m", 1)
    frame = pd.DataFrame({"z": [0.0, 1, 2, 3], "y": [0, 0, 1, 1]})
    model = LogisticRegression().fit(frame[["z"]], frame["y"])
    other = _candidate(model=model, features=describe_schema(frame[["z"]]), model_digest=model_digest(model),
                       eval_data=frame)
    with pytest.raises(InvalidCandidateError) as refused:
        registry.register(other, "b" * 32, None, None)
    assert str(refused.value) == (
        "model candidate 'm' cannot be registered: it shares no feature column with production v1 of 'm' (x; it "
        "has z), so it is another model. Give it a name of its own (ModelCandidate(name=...); in the lifecycle "
        "pipeline, -p model_name=...).")
    assert [v["version"] for v in registry.versions("m")] == [1]
    wider = pd.DataFrame({"x": [0.0, 1, 2, 3], "z": [1.0, 0, 1, 0], "y": [0, 0, 1, 1]})
    model = LogisticRegression().fit(wider[["x", "z"]], wider["y"])
    assert registry.register(_candidate(model=model, features=describe_schema(wider[["x", "z"]]),
                                        model_digest=model_digest(model), eval_data=wider),
                             "c" * 32, None, None) == (2, True)  # one shared column: the same model, grown


def test_a_candidate_of_another_label_is_not_promoted_over_production():
    """A model predicting another column, scored on its own label, said nothing of how it predicts production's."""
    from sklearn.linear_model import LogisticRegression

    from orchestrator.registry import judge

    frame = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5, 6, 7] * 8, "y": [0, 0, 0, 1, 0, 1, 1, 1] * 8})
    frame["upgraded"] = frame["y"]
    production = _candidate(eval_data=frame)
    model = LogisticRegression().fit(frame[["x"]], frame["upgraded"])
    other = _candidate(model=model, label="upgraded", model_digest=model_digest(model), eval_data=frame,
                       metrics=evaluate("classification", model, frame[["x"]], frame["upgraded"]))
    gate = judge(other, production, 1)
    assert not gate.promoted
    assert gate.reason == ("its label 'upgraded' is not production v1's 'y': a model of another target is not "
                           "promoted over it. Give it a name of its own (in the lifecycle pipeline, -p "
                           "model_name=...), or promote it by hand (orch models promote m@VERSION)")
    assert judge(_candidate(model=model, model_digest=model_digest(model), eval_data=frame,
                            metrics=other.metrics), production, 1).reason.startswith("accuracy")
