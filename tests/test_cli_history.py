"""`orch runs` on a store with history: finding the runs a user asks about among hundreds."""

from __future__ import annotations

import json

import pytest

from orchestrator import pipeline, step
from orchestrator.context import Context


@step
def fit(alpha: float) -> float:
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return alpha * 2


@pipeline
def training(alpha: float = 1.0):
    return fit(alpha=alpha)


@pipeline
def scoring(alpha: float = 1.0):
    return fit(alpha=alpha)


def _orch(capsys, *args: str) -> tuple[int, str, str]:
    from orchestrator.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Runs of two pipelines, some failed and one recorded interrupted, oldest first."""
    store = tmp_path_factory.mktemp("history") / "store"
    made = []
    for alpha in (0.1, -1.0, 0.2, -2.0, 0.3):
        made.append(training.run(store=str(store), alpha=alpha))
    made.append(scoring.run(store=str(store), alpha=0.5))
    stopped = training.run(store=str(store), alpha=0.4)
    lineage = Context.open(store).lineage
    with lineage.transaction() as c:  # as a run stopped by SIGTERM is recorded
        c.execute("UPDATE runs SET status='interrupted' WHERE run_id=?", (stopped.id,))
    made.append(stopped)
    return store, made


def test_runs_lists_only_the_statuses_asked_for(history, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    store, made = history
    failed = [r.id for r in reversed(made) if r.status == "failed"]
    assert len(failed) == 2
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--status", "failed", "--json")
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == failed
    # ... and why each failed, as orch show says it.
    assert [r["error"].split(" (details")[0] for r in json.loads(out)] == \
        ["step 'fit' failed after 1 attempt: ValueError: alpha must be >= 0, got -2.0",
         "step 'fit' failed after 1 attempt: ValueError: alpha must be >= 0, got -1.0"]
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--status", "failed", "--status", "interrupted",
                         "--pipeline", "training", "--json")
    assert [(r["run_id"], r["status"]) for r in json.loads(out)] == \
        [(made[-1].id, "interrupted")] + [(run_id, "failed") for run_id in failed]
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--status", "failed", "-n", "1")
    assert code == 0 and failed[0] in out and failed[1] not in out
    # The count and the command that lists them all are of the failed runs, not of every run.
    assert out.splitlines()[-1] == "the last 1 of 2 failed runs; orch runs --status failed -n 2 lists them all"


def test_runs_with_a_status_no_run_has_says_so_and_how_to_list_every_status(history, capsys):
    store, _ = history
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--pipeline", "scoring", "--status", "failed")
    # Not "no runs of pipeline 'scoring'": it has one, which succeeded.
    assert (code, out) == (0, "no failed runs of scoring; `orch runs --pipeline scoring` lists them all.\n")
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--status", "running", "--json")
    assert (code, out) == (0, "[]\n")
    code, _, err = _orch(capsys, "--store", str(store), "runs", "--pipeline", "scorin", "--status", "failed")
    assert code == 2 and "Did you mean 'scoring'?" in err
    code, _, err = _orch(capsys, "--store", str(store), "runs", "--status", "failure")
    assert code == 2 and err.startswith("error: Invalid value for '--status': 'failure' is not one of")


def test_a_run_id_in_capitals_names_the_run_as_a_digest_in_capitals_names_the_artifact(history, capsys):
    """C01A022594A1, copied from a ticket or a spreadsheet, was 'no run' to show, logs, lineage and get_run."""
    import orchestrator

    store, made = history
    run = next(r for r in made if r.status == "succeeded" and r.id != r.id.upper())  # one id of digits alone in 300
    upper = run.id.upper()
    code, out, _ = _orch(capsys, "--store", str(store), "show", upper[:8], "--json")
    assert code == 0 and json.loads(out)["run_id"] == run.id
    code, out, _ = _orch(capsys, "--store", str(store), "logs", f"{upper}:fit", "--json")
    assert code == 0 and json.loads(out)["run_id"] == run.id
    code, out, _ = _orch(capsys, "--store", str(store), "lineage", upper, "--format", "json")
    assert code == 0 and json.loads(out)["roots"] == [f"step:{run.id}:fit"]
    code, out, _ = _orch(capsys, "--store", str(store), "lineage", f"{upper}:fit", "--format", "json")
    assert code == 0 and json.loads(out)["roots"] == [f"step:{run.id}:fit"]
    assert orchestrator.get_run(upper, store=str(store)).id == run.id
    assert orchestrator.load(f"{upper}:fit", store=str(store)) == run.output()


def test_runs_since_a_moment_lists_the_runs_started_since(history, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    store, made = history
    lineage = Context.open(store).lineage
    # The first three runs a week ago, the others now.
    week_ago = __import__("time").time() - 7 * 86400
    with lineage.transaction() as c:
        for k, run in enumerate(made[:3]):
            c.execute("UPDATE runs SET started=?, ended=? WHERE run_id=?", (week_ago + k, week_ago + k + 1, run.id))
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--since", "2d", "--json")
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [r.id for r in reversed(made[3:])]
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--since", "8d", "--status", "failed", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [made[3].id, made[1].id]
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--since", "2d", "-n", "1")
    last = out.splitlines()[-1]
    assert last.startswith(f"the last 1 of {len(made) - 3} runs since ") and f" -n {len(made) - 3} lists them all" in last
    # The command it names lists the same runs.
    command = last.split("; ", 1)[1].removesuffix(" lists them all").split()
    code, again, _ = _orch(capsys, "--store", str(store), *command[1:], "--json")
    assert [r["run_id"] for r in json.loads(again)] == [r.id for r in reversed(made[3:])]
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--since", "2099-01-01")
    assert code == 0 and out == "no runs since 2099-01-01T00:00:00; `orch runs` lists them all.\n"
    code, _, err = _orch(capsys, "--store", str(store), "runs", "--since", "yesterday")
    assert code == 2 and "'yesterday' is neither a time ago (30m, 2h, 7d, 1w) nor a date and time" in err


def test_a_digest_given_for_a_run_says_what_it_is_and_which_run_made_it(history, capsys):
    """`orch show` lists outputs by digest; pasting one back into show or logs said only 'no run'."""
    import orchestrator
    from orchestrator.errors import UserError

    store, made = history
    run = next(r for r in made if r.status == "succeeded")
    digest = run.steps["fit"].outputs["out"]
    # The first run that output that value made it; a later equal output is the same artifact.
    expected = (f"error: '{digest[:10]}' is a digest, not a run: an output of step fit of run {run.id}. "
                f"`orch show {run.id}` shows that run; `orch lineage {digest[:12]}` traces it.\n")
    for args in (["show", digest[:10]], ["logs", f"{digest[:10]}:fit"]):
        code, _, err = _orch(capsys, "--store", str(store), *args)
        assert (code, err) == (2, expected), args
    with pytest.raises(UserError, match=f"is a digest, not a run: an output of step fit of run {run.id}"):
        orchestrator.get_run(digest[:10], store=str(store))
    code, _, err = _orch(capsys, "--store", str(store), "show", "f" * 10)  # neither a run nor a digest
    assert (code, err) == (2, f"error: no run '{'f' * 10}' in this store. List runs with `orch runs`.\n")


def test_a_mistyped_option_suggests_the_closest_option_not_every_near_one(history, capsys):
    """With --since beside --json, click offered both for --jsn; the commonest typo gets one answer."""
    store, _ = history
    for typo, meant in (("--jsn", "--json"), ("--sinc", "--since"), ("--stat", "--status")):
        code, _, err = _orch(capsys, "--store", str(store), "runs", typo)
        assert (code, err) == (2, f"error: No such option '{typo}'. Did you mean '{meant}'? See `orch runs --help`.\n")
