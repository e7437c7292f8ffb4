"""The `orch` command line: exit codes, JSON documents, error lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PIPELINES, Orch, run_once_per_session


def test_run_then_runs_and_show_json(orch, calls):
    result = orch("run", "edits.py")
    assert result.returncode == 0, result.stderr
    runs = json.loads(orch("runs", "--json").stdout)
    assert len(runs) == 1
    assert set(runs[0]) >= {"run_id", "pipeline", "status", "started"}
    assert runs[0]["pipeline"] == "edits" and runs[0]["status"] == "succeeded"
    shown = json.loads(orch("show", runs[0]["run_id"][:6], "--json").stdout)
    assert shown["run_id"] == runs[0]["run_id"] and shown["status"] == "succeeded"
    step = next(s for s in shown["steps"] if s["name"] == "plain")
    assert step["status"] == "ran" and step["attempts"] == 1 and step["reason"] == "no earlier result"
    assert step["outputs"][0]["name"] == "out" and len(step["outputs"][0]["hash"]) == 32


def test_json_times_name_the_same_instant_from_any_time_zone(orch, calls):
    """A CI job in UTC and a user in New York read one run: its `started` must be one instant, not two hours."""
    from datetime import datetime

    run_once_per_session(orch, "edits.py")
    seen = {}
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        local = Orch(orch.store, orch.cwd, {**orch.env, "TZ": zone})
        run = json.loads(local("runs", "--json").stdout)[0]
        shown = json.loads(local("show", "latest", "--json").stdout)
        started, ended = datetime.fromisoformat(run["started"]), datetime.fromisoformat(shown["ended"])
        assert started.tzinfo is not None and ended >= started, (zone, run["started"], shown["ended"])
        assert shown["started"] == run["started"]
        seen[zone] = (run["started"], started)
    assert seen["UTC"][0] != seen["America/New_York"][0]  # each reads its own local time...
    assert len({instant for _, instant in seen.values()}) == 1  # ...of the same instant


def test_show_of_a_step_points_to_its_run_logs_and_lineage(orch, calls):
    run_once_per_session(orch, "edits.py")
    shown = orch("show", "latest:plain")
    assert shown.returncode == 2 and shown.stderr.count("\n") == 1 and "Traceback" not in shown.stderr
    assert "orch show takes a run, not a step" in shown.stderr and "`orch logs latest:plain`" in shown.stderr
    unknown = orch("show", "latest:nope")
    assert unknown.returncode == 2 and "has no step 'nope'" in unknown.stderr


def test_logs_of_a_mistyped_step_names_the_close_one(orch, calls):
    run_once_per_session(orch, "edits.py")
    logs = orch("logs", "latest:plian")
    assert logs.returncode == 2 and logs.stderr.count("\n") == 1
    assert "has no step 'plian'. Did you mean 'plain'? See its steps with `orch show" in logs.stderr


def test_logs_of_a_run_or_a_step_alone_says_how_to_write_run_step(orch, calls):
    """`orch logs latest` and `orch logs plain` only said "is not RUN:STEP"."""
    run_once_per_session(orch, "edits.py")
    run_id = json.loads(orch("runs", "--json").stdout)[0]["run_id"]
    steps = [s["name"] for s in json.loads(orch("show", run_id, "--json").stdout)["steps"]]
    for ref in ("latest", run_id[:6]):
        logs = orch("logs", ref)
        assert logs.returncode == 2 and logs.stderr.count("\n") == 1, logs.stderr
        assert logs.stderr.startswith(f"error: '{ref}' names run {run_id[:12]}, not one of its steps. Write "
                                      f"RUN:STEP, such as `orch logs {ref}:{steps[-1]}` (its steps: {steps[0]}, ")
        assert orch("logs", f"{ref}:{steps[-1]}").returncode == 0
    alone = orch("logs", "plain")
    assert (alone.returncode, alone.stderr) == (2, "error: 'plain' is not RUN:STEP. For step plain of the newest "
                                                   "run, write `orch logs latest:plain`.\n")
    unknown = orch("logs", "neither")
    assert unknown.stderr == "error: 'neither' is not RUN:STEP. Write it like `orch logs 3f2a:train`.\n"


def test_runs_lists_last_started_first(orch, calls):
    orch("run", "edits.py")
    orch("run", "edits.py", "-p", "n=9")
    runs = json.loads(orch("runs", "--json").stdout)
    assert [r["started"] for r in runs] == sorted((r["started"] for r in runs), reverse=True)
    shown = json.loads(orch("show", runs[0]["run_id"], "--json").stdout)
    assert shown["params"] == {"n": 9}


def test_progress_written_to_a_log_says_how_far_the_run_is_and_how_long_each_step_took(orch, calls):
    result = orch("run", "branches.py")  # stderr is a pipe here, as in CI: one line per event
    lines = result.stderr.splitlines()
    finished = [line for line in lines if re.match(r"\s+(ran|failed|skipped) ", line)]
    assert [re.search(r"\((\d+)/5", line).group(1) for line in finished] == ["1", "2", "3", "4", "5"]
    ran = next(line for line in finished if line.split()[:2] == ["ran", "source"])
    assert re.search(r"\(\d/5, [\d.]+ (ms|s)\)$", ran), ran
    skipped = next(line for line in finished if line.split()[0] == "skipped")
    assert skipped.endswith("/5)"), skipped  # a skipped step never started: no duration


def test_failed_run_exits_1_with_one_line_error(orch, calls):
    result = orch("run", "branches.py")
    assert result.returncode == 1
    assert "step 'bad' failed after 1 attempt: ValueError: bad input: x is odd" in result.stderr
    assert "Traceback" not in result.stderr
    verbose = orch("run", "branches.py", "--verbose")
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr


def test_a_step_error_holding_a_whole_array_is_cut_on_the_last_line(orch, project):
    """A stratified split of a regression target raised an error listing every value: thousands of
    characters on `orch run`'s one error line. `orch show` keeps the whole error."""
    (project / "long_error.py").write_text(
        "from orchestrator import pipeline, step\n\n\n@step\ndef split(n: int) -> int:\n"
        "    raise ValueError('too few members: ' + str(list(range(n))))\n\n\n"
        "@pipeline\ndef long_error(n: int = 2000):\n    return split(n)\n")
    result = orch("run", "long_error.py")
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and len(line) < 700, line
    assert line.startswith("error: step 'split' failed after 1 attempt: ValueError: too few members: [0, 1, 2")
    assert "more characters] (details: `orch show " in line and line.endswith("`)")
    shown = json.loads(orch("show", "latest", "--json").stdout)
    assert "1998, 1999]" in shown["steps"][0]["error"]


def test_logs_prints_captured_output(orch, calls):
    orch("run", "branches.py")
    run_id = json.loads(orch("runs", "--json").stdout)[0]["run_id"]
    out = orch("logs", f"{run_id}:bad")
    assert out.returncode == 0
    assert "ValueError: bad input" in out.stdout


def test_logs_shows_a_redrawn_progress_bar_as_a_terminal_left_it(orch, project):
    # tqdm redraws its bar after "\r": raw, hundreds of states on one line in `less` or a CI log.
    (project / "bars.py").write_text(
        "import subprocess, sys\n"
        "from orchestrator import pipeline, step\n\n"
        "@step\n"
        "def bar() -> int:\n"
        "    print('loading')\n"
        "    for k in range(0, 101, 10):\n"
        "        sys.stderr.write(f'\\r{k:3d}%|' + '#' * (k // 10))\n"
        "    sys.stderr.write('\\r100%|##########| done\\n')\n"
        "    subprocess.run(['echo', 'from a subprocess'], check=True)\n"
        "    return 1\n\n"
        "@pipeline\n"
        "def bars():\n"
        "    return bar()\n")
    run_once_per_session(orch, "bars.py")
    out = orch("logs", "latest:bar").stdout
    assert out.splitlines()[1:] == ["--- stdout ---", "loading", "from a subprocess", "--- stderr ---",
                                    "100%|##########| done"], out


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_json_output_is_one_document_whatever_user_code_writes_to_descriptor_1(orch, project, executor):
    """`print` went to stderr, but a subprocess at import (`git lfs pull`), a step's `--verbose` echo
    and a pool worker wrote to descriptor 1, the JSON's stdout."""
    (project / "noisy.py").write_text(
        "import subprocess\n"
        "from orchestrator import pipeline, step\n\n"
        "subprocess.run(['echo', 'at import'], check=True)\n\n"
        "@step\n"
        "def talk(n: int) -> int:\n"
        "    print('printed by the step')\n"
        "    subprocess.run(['echo', 'from a subprocess'], check=True)\n"
        "    return n\n\n"
        "@pipeline\n"
        "def noisy(n: int = 1):\n"
        "    return talk(n)\n")
    extra = [] if executor == "sequential" else ["--executor", "process", "--workers", "1"]
    for args in (["run", "noisy.py", "--verbose", "--json", *extra], ["plan", "noisy.py", "--json"],
                 ["dag", "noisy.py", "--format", "dot"]):
        out = orch(*args)
        assert out.returncode == 0, out.stderr
        if args[0] == "dag":
            assert out.stdout.startswith("digraph"), out.stdout
        else:
            json.loads(out.stdout)  # nothing else on stdout
        assert "at import" in out.stderr
        if args[0] == "run":
            assert "printed by the step" in out.stderr and "from a subprocess" in out.stderr


@pytest.mark.parametrize("where,code", [("import", ""), ("import", "3"), ("body", ""), ("body", "'bye'")])
def test_sys_exit_at_import_or_in_the_body_is_one_line_and_exit_2(orch, project, where, code):
    """It ended orch there: `sys.exit()` silently with exit 0, no run, no JSON for the job's wrapper."""
    body = f"    sys.exit({code})\n" if where == "body" else ""
    (project / "script.py").write_text(
        "import sys\n"
        "from orchestrator import pipeline, step\n\n"
        + (f"sys.exit({code})\n\n" if where == "import" else "")
        + "@step\n"
        "def one() -> int:\n"
        "    return 1\n\n"
        "@pipeline\n"
        "def script():\n"
        + body +
        "    return one()\n")
    for command in ("run", "plan"):
        out = orch(command, "script.py", "--json")
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
        assert f"called sys.exit({code})" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_path_parameter_that_is_a_pipe_or_a_device_is_refused_in_one_line(orch, project, special):
    """Hashing `-p path=<(cat data.csv)` consumed the pipe, so the step read it empty and the run
    succeeded on no data; `/dev/zero` hashed forever."""
    if special == "fifo":
        os.mkfifo(project / "pipe")
        special = "pipe"
    out = orch("run", "files.py", "-p", f"path={special}", "-p", "unit=letters", timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "not a file or folder" in out.stderr and "Traceback" not in out.stderr


def test_a_pipeline_file_with_a_colon_in_its_name_runs(orch, project):
    """`run:1.py` was read as FILE:PIPELINE (`run`, pipeline `1.py`): 'pipeline file run does not exist'."""
    (project / "run:1.py").write_text((project / "edits.py").read_text())
    out = orch("run", "run:1.py")
    assert out.returncode == 0, out.stderr


def test_a_reader_that_goes_away_is_no_failure_of_a_listing_command(orch, project):
    """`orch show RUN | head -1` exited 1 (rich's answer to a closed pipe), failing the script's pipeline
    under `set -o pipefail`; `orch lineage ... | head` exited 0."""
    run_once_per_session(orch, "edits.py")
    for command in ("show latest", "runs", "cache ls"):
        piped = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{sys.executable} -m orchestrator --store {orch.store} {command} | true"],
            cwd=orch.cwd, env=orch.env, capture_output=True, text=True, timeout=120)
        assert piped.returncode == 0, (command, piped.stderr)
        assert "Traceback" not in piped.stderr
    # `orch run` exits as its run went, its JSON read or not; with stdout closed too (it crashed).
    for shell in ("run edits.py -p n=11 --json | true", "run edits.py -p n=12 --json >&-",
                  "plan edits.py --json >&-", "dag edits.py >&-"):
        done = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} -m orchestrator --store {orch.store} "
                               f"{shell}"], cwd=orch.cwd, env=orch.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (shell, done.stderr)


def test_logs_of_an_attempt_of_a_cached_step_exits_2_pointing_at_the_run_that_made_it(orch, project):
    """Any attempt of a step that ran exits 2 when it made no such attempt; of a cached step it exited 0."""
    orch("run", "edits.py")
    orch("run", "edits.py")  # every step cached
    out = orch("logs", "latest:plain", "--attempt", "1")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "was cached" in out.stderr and "--attempt 1`" in out.stderr and "made no attempt" in out.stderr
    assert orch("logs", "latest:plain").returncode == 0  # without --attempt: the note, as before


def test_param_conversion(orch, calls, project):
    (project / "input.txt").write_text("abc")
    result = orch("run", "files.py", "-p", "path=input.txt", "-p", "unit=letters", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["params"] == {"path": "input.txt", "unit": "letters"}
    bad = orch("run", "edits.py", "-p", "n=four")
    assert bad.returncode == 2
    assert "parameter 'n': expected an integer like 3, got four." in bad.stderr


def test_a_path_parameter_given_a_copy_runs_on_the_copy(orch, calls, project):
    """`-p path=b.csv` after a run on a.csv of the same bytes: the step stayed cached, and said b.csv was a.csv."""
    (project / "a.csv").write_text("x\n1\n")
    (project / "b.csv").write_text("x\n1\n")
    assert orch("run", "named_files.py:one", "--json").returncode == 0
    out = orch("run", "named_files.py:one", "-p", "path=b.csv", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    [summarize] = [s for s in doc["steps"] if s["name"] == "summarize"]
    assert (summarize["status"], summarize["reason"]) == ("ran", f"parameter `path` changed (now {project / 'b.csv'})")
    assert calls.counts()["summarize"] == 2
    from orchestrator import load

    assert load(f"{doc['run_id']}:summarize", store=orch.store) == {"file": "b.csv", "rows": 1}


def test_params_file(orch, calls, project):
    (project / "p.toml").write_text("n = 7\n")
    result = orch("run", "edits.py", "--params", "p.toml", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"] == {"n": 7}


@pytest.mark.parametrize("args,needle", [
    (["run", "missing.py"], "pipeline file missing.py does not exist"),
    (["run", "recorder.py"], "recorder.py defines no pipeline"),
    (["run", "flaky.py"], "defines 3 pipelines (flaky_pipeline, filtered, timeouts). Choose one: flaky.py:"),
    (["run", "flaky.py:flaky_pipelin"], "has no pipeline 'flaky_pipelin'. Did you mean 'flaky_pipeline'?"),
    (["run", "flaky.py:wrong_kind"], "flaky.py has no pipeline 'wrong_kind'. 'wrong_kind' is a step: name the "
                                     "pipeline that calls it. Pipelines in it: flaky_pipeline, filtered, timeouts."),
    (["run", "edits.py", "-p", "m=3"], "pipeline 'edits' has no parameter 'm'"),
    (["run", "edits.py", "-p", "n"], "is not name=value"),
    (["run", "edits.py", "-p"], "requires an argument. See `orch run --help`."),  # was `orch --help`
    (["cache", "gc", "--keep-last"], "requires an argument. See `orch cache gc --help`."),
    (["run", "edits.py", "--rerun", "plian"], "--rerun plian: pipeline 'edits' has no step 'plian'. Did you mean 'plain'?"),
    (["plan", "edits.py", "--rerun", "plian"], "--rerun plian: pipeline 'edits' has no step 'plian'."),
    (["show", "nope"], "no run 'nope' in this store"),
    (["logs", "nope:step"], "no run 'nope' in this store"),
    (["lineage", "zzz"], "is not a run id, RUN:step or digest"),
    (["lineage", "latest~99"], "so no latest~99"),  # as `orch show latest~99` says it
    (["plan", "missing.py"], "does not exist"),
    (["run", "edits.py:"], "the pipeline name after ':' in 'edits.py:' is empty. Write edits.py:PIPELINE"),
    (["lineage", "latest", "--upstream", "--downstream"], "choose one of --upstream or --downstream"),
    (["logs", "latest:plain", "--attempt", "5"], "has no attempt 5; its attempts are 1"),
    (["show", ""], "an empty run id is not valid"),
    (["logs", ":plain"], "an empty run id is not valid"),
    (["lineage", ""], "an empty REF is not valid"),
    (["lineage", "data/missing.csv"], "file 'data/missing.csv' does not exist"),
    (["lineage", "missing.csv"], "file 'missing.csv' does not exist"),
    (["runs", "--pipeline", "edit"],
     "no runs of pipeline 'edit' in this store; pipelines with runs: edits. Did you mean 'edits'?"),
    (["runs", "--pipeline", "nosuch", "--json"], "no runs of pipeline 'nosuch' in this store; pipelines with runs: edits."),
])
def test_user_mistakes_exit_2_with_one_line(orch, args, needle):
    if args[0] in ("show", "logs", "lineage", "runs"):
        run_once_per_session(orch, "edits.py")  # these commands need a store to read
    result = orch(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_command_line_names_its_own_options_in_reasons_and_messages(orch, project):
    """`orch run` says `--rerun` and `-p`, where `Pipeline.run` says `rerun=` and `n=VALUE`."""
    run_once_per_session(orch, "edits.py")
    forced = orch("run", "edits.py", "--rerun", "plain", "--json")
    assert forced.returncode == 0, forced.stderr
    assert {s["name"]: s["reason"] for s in json.loads(forced.stdout)["steps"]}["plain"] == "forced with --rerun"
    (project / "needs.py").write_text("from orchestrator import pipeline, step\n\n@step\ndef one(n: int) -> int:\n"
                                      "    return n\n\n@pipeline\ndef needs(n: int):\n    return one(n)\n")
    for command in ("run", "plan", "dag"):
        missing = orch(command, "needs.py")
        assert missing.returncode == 2
        assert missing.stderr == ("error: pipeline 'needs' needs parameter 'n', which has no default. "
                                  "Pass -p n=VALUE.\n"), command


def test_a_pipeline_the_file_imports_is_not_one_it_defines(orch, project):
    ran = orch("run", "reuses.py", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["pipeline"] == "reuse"
    assert orch("plan", "reuses.py:two_params").returncode == 0  # still there when asked for by name
    (project / "runs_two.py").write_text("from two_params import two_params\nfrom reuses import reuse\n")
    both = orch("run", "runs_two.py")
    assert both.returncode == 2
    assert "runs_two.py imports 2 pipelines (two_params, reuse). Choose one: runs_two.py:two_params" in both.stderr


@pytest.mark.parametrize("args", [["runs", "-n", "0"], ["runs", "-n", "-1"], ["cache", "gc", "--keep-last", "-2"],
                                  ["lineage", "latest", "--depth", "-1"], ["logs", "latest:plain", "--attempt", "0"]])
def test_out_of_range_numbers_are_usage_errors(orch, args):
    run_once_per_session(orch, "edits.py")
    result = orch(*args)
    assert result.returncode == 2 and "is not in the range" in result.stderr, result.stderr
    command = " ".join(args[:2] if args[0] == "cache" else args[:1])
    assert result.stderr.count("\n") == 1 and f"See `orch {command} --help`." in result.stderr, result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["runz"], "error: No such command 'runz'. (Did you mean one of: 'run', 'runs'?) See `orch --help`."),
    # Metaflow's `resume` and Kedro's `viz`: the command that does it here.
    (["resume"], "error: No such command 'resume': run the pipeline again: `orch run FILE` reuses each step that "
                 "finished (cached) and runs the rest, and `--rerun STEP` forces one. See `orch --help`."),
    (["viz"], "error: No such command 'viz': `orch dag FILE` draws the pipeline (--format dot|mermaid). See "
              "`orch --help`."),
    (["run"], "error: Missing argument 'FILE[:PIPELINE]'. See `orch run --help`."),
    (["runs", "--jsn"], "error: No such option '--jsn'. Did you mean '--json'? See `orch runs --help`."),
    (["diff", "a", "b", "c"], "error: Got unexpected extra argument (c). See `orch diff --help`."),
    # The same words, and suggestions, on click 8.2 (the oldest `orch` installs with) as on the newest.
    (["models", "lss"], "error: No such command 'lss'. Did you mean 'ls'? See `orch models --help`."),
    (["cache", "gc", "--keep-lst", "3"], "error: No such option '--keep-lst'. Did you mean '--keep-last'? See "
                                         "`orch cache gc --help`."),
    # What a user told to "pass --store cache" types: the option of orch after the command.
    (["run", "edits.py", "--store", "cache"], "error: --store is an option of orch, not of `orch run`: give it "
                                              "before the command, `orch --store DIR|URL run ...`. See `orch run "
                                              "--help`."),
    (["cache", "gc", "--metadata", "m"], "error: --metadata is an option of orch, not of `orch cache gc`: give it "
                                         "before the command, `orch --metadata PATH cache gc ...`. See `orch cache "
                                         "gc --help`."),
    # docs/cli.md lists -v among orch's options: after the command it was "No such option '-v'".
    (["runs", "-v"], "error: -v is an option of orch, not of `orch runs`: give it before the command, `orch -v "
                     "runs ...`. See `orch runs --help`."),
])
def test_a_usage_mistake_is_one_line_naming_the_help_to_read(orch, args, says):
    result = orch(*args)
    assert result.returncode == 2 and result.stderr == says + "\n", result.stderr


def test_orch_alone_prints_its_help():
    alone = subprocess.run([sys.executable, "-m", "orchestrator"], capture_output=True, text=True)
    assert "Usage: orch [OPTIONS] COMMAND" in alone.stdout + alone.stderr and "lineage" in alone.stdout + alone.stderr
    assert "error:" not in alone.stderr


def test_syntax_error_in_pipeline_file_is_one_line(orch, project):
    (project / "broken.py").write_text("from orchestrator import step\n\ndef f(:\n    pass\n")
    result = orch("run", "broken.py")
    assert result.returncode == 2
    assert "broken.py:3: syntax error" in result.stderr


HELPER_MISTAKES = {
    "name": ("import os\n\nY = undefined_name + 1\n",
             "importing pipe.py failed at helpers.py:3 (imported from pipe.py:2): NameError: "
             "name 'undefined_name' is not defined"),
    "misspelled import": ("from collections import OrderedDit\n",
                          "importing pipe.py failed at helpers.py:1 (imported from pipe.py:2): ImportError: "
                          "cannot import name 'OrderedDit' from 'collections'"),
    "syntax": ("def f(:\n    pass\n", "helpers.py:1: syntax error: invalid syntax (imported from pipe.py:2)"),
}


@pytest.mark.parametrize("mistake", sorted(HELPER_MISTAKES))
def test_an_error_in_an_imported_helper_is_shown_where_it_is(orch, project, mistake):
    source, needle = HELPER_MISTAKES[mistake]
    (project / "helpers.py").write_text(source)
    (project / "pipe.py").write_text("from orchestrator import pipeline, step\nimport helpers\n")
    result = orch("run", "pipe.py")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr, result.stderr
    if mistake == "misspelled import":
        assert "Did you mean 'OrderedDict'?" in result.stderr


def test_an_error_in_a_helper_of_a_subfolder_names_its_path_and_own_errors_keep_their_line(orch, project):
    (project / "lib").mkdir()
    (project / "lib" / "deep.py").write_text("def boom():\n    return {}['missing']\n\nboom()\n")
    (project / "pipe.py").write_text("import json\n\nfrom lib import deep\n")
    assert "failed at lib/deep.py:2 (imported from pipe.py:3): KeyError: 'missing'" in orch("run", "pipe.py").stderr
    (project / "own.py").write_text("import json\ny = json.dumps(undefined)\n")
    assert "importing own.py failed at line 2: NameError:" in orch("run", "own.py").stderr


def test_step_on_a_class_is_one_line_at_import(orch, project):
    (project / "model.py").write_text(
        "from orchestrator import pipeline, step\n\n\n@step\nclass Model:\n    pass\n\n\n"
        "@pipeline\ndef p():\n    return Model()\n")
    result = orch("run", "model.py")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: @step cannot decorate class 'Model' (model.py:4): a step must be a "
                                    "function. Decorate a function that builds it")
    assert len(result.stderr.strip().splitlines()) == 1


def test_lineage_both_ways_across_runs(orch, calls, project):
    (project / "input.txt").write_text("hello")
    assert orch("run", "files.py").returncode == 0
    assert orch("run", "files.py", "-p", "unit=letters").returncode == 0
    runs = json.loads(orch("runs", "--json").stdout)
    latest = json.loads(orch("show", runs[0]["run_id"], "--json").stdout)
    report = next(s for s in latest["steps"] if s["name"] == "report")
    up = json.loads(orch("lineage", f"{runs[0]['run_id']}:report", "--format", "json").stdout)
    labels = " ".join(n["label"] for n in up["nodes"])
    # report ran in the second run; length and read were cached there and computed in the first.
    assert f"run {runs[0]['run_id']}" in labels and f"run {runs[1]['run_id']}" in labels
    assert any(n["kind"] == "file" and n["path"].endswith("input.txt") for n in up["nodes"])
    read_out = next(s for s in json.loads(orch("show", runs[1]["run_id"], "--json").stdout)["steps"]
                    if s["name"] == "read")["outputs"][0]["hash"]
    down = json.loads(orch("lineage", read_out[:10], "--downstream", "--format", "json").stdout)
    steps = {n["step"] for n in down["nodes"] if n["kind"] == "step"}
    assert {"shout", "length", "report"} <= steps
    assert report["outputs"][0]["hash"] in {n.get("digest") for n in down["nodes"]}
    for fmt in ("tree", "dot", "mermaid"):
        out = orch("lineage", f"{runs[0]['run_id']}:report", "--format", fmt)
        assert out.returncode == 0 and "report" in out.stdout


def test_dag_formats(orch):
    tree = orch("dag", "edits.py")
    assert tree.returncode == 0 and "uses_other" in tree.stdout and "← base" in tree.stdout
    dot = orch("dag", "edits.py", "--format", "dot")
    assert '"base" -> "plain"' in dot.stdout
    mermaid = orch("dag", "edits.py", "--format", "mermaid").stdout.splitlines()
    ids = {line.split("[")[1].strip('"]'): line.split("[")[0].strip() for line in mermaid if "[" in line}
    assert f"  {ids['base']} --> {ids['plain']}" in mermaid


def test_dag_counts_steps_as_run_does_and_says_a_map_makes_one_step_per_item(orch):
    tree = orch("dag", "fanout.py:fanout")
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines()[0] == "pipeline fanout (2 steps + mapped items)"
    source = (Path(__file__).parent / "pipelines" / "fanout.py").read_text().splitlines()
    line = next(n for n, text in enumerate(source, 1) if "square.map(" in text)
    assert f"square.map (fanout.py:{line}) ← items: one step per item of its list" in tree.stdout
    run = orch("run", "fanout.py:fanout")
    assert ": 2 steps + mapped items" in run.stderr


def test_dag_params_from_draws_the_dag_that_run_had(orch):
    """A pipeline whose shape follows a parameter (a branch per i): orch run and plan took --params-from, dag did not."""
    run = orch("run", "parallel.py:parallel", "-p", "n=2", "-p", "seconds=0", "--json")
    assert run.returncode == 0, run.stderr
    run_id = json.loads(run.stdout)["run_id"]
    assert orch("dag", "parallel.py:parallel").stdout.splitlines()[0] == "pipeline parallel (5 steps)"
    tree = orch("dag", "parallel.py:parallel", "--params-from", run_id[:8])
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines()[0] == "pipeline parallel (3 steps)"
    assert orch("dag", "parallel.py:parallel", "--params-from", "latest", "-p", "n=3").stdout.startswith(
        "pipeline parallel (4 steps)")
    mermaid = orch("dag", "parallel.py:parallel", "--params-from", "latest", "--format", "mermaid").stdout
    assert mermaid.count('["branch') == 2
    unknown = orch("dag", "parallel.py:parallel", "--params-from", "fffffff")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "Traceback" not in unknown.stderr


def test_dag_draws_the_pipeline_an_earlier_run_was_given_with_params_from(orch, project):
    """`orch dag FILE --params-from RUN` draws what `orch run FILE --params-from RUN` would run.

    A map over a parameter list has one step per item, so the drawing depends on the values;
    a parameter without a default is taken from the run, as run and plan take it.
    """
    (project / "listed.py").write_text(
        "from orchestrator import pipeline, step\n\n@step\ndef one(x: int) -> int:\n    return x\n\n"
        "@step\ndef total(values: list) -> int:\n    return sum(values)\n\n"
        "@pipeline\ndef listed(xs: list[int]):\n    return total(one.map(xs))\n")
    ran = orch("run", "listed.py", "-p", "xs=[4, 5, 6]", "--json")
    assert ran.returncode == 0, ran.stderr
    tree = orch("dag", "listed.py", "--params-from", json.loads(ran.stdout)["run_id"][:6])
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines()[0] == "pipeline listed (4 steps)"
    assert "total (listed.py:13) ← one, one_2, one_3" in tree.stdout
    changed = orch("dag", "listed.py", "--params-from", "latest", "-p", "xs=[1]", "--format", "mermaid")
    assert changed.returncode == 0, changed.stderr
    assert '"one_2"' not in changed.stdout and '"one"' in changed.stdout


def test_dag_diagrams_quote_every_name(orch, project):
    """Step names that are Mermaid keywords (end, class, graph) get generated ids and quoted labels."""
    (project / "keywords.py").write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef graph(n: int) -> int:\n    return n\n"
        "@step\ndef end(n: int) -> int:\n    return n\n"
        "@step(name='class')\ndef klass(n: int) -> int:\n    return n\n"
        "@pipeline\ndef keywords(n: int = 1):\n    return klass(end(graph(n)))\n"
    )
    mermaid = orch("dag", "keywords.py", "--format", "mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.splitlines() == [
        "graph LR", '  n0["graph"]', '  n1["end"]', '  n2["class"]', "  n0 --> n1", "  n1 --> n2"]
    dot = orch("dag", "keywords.py", "--format", "dot")
    assert '"graph" -> "end";' in dot.stdout and '"end" -> "class";' in dot.stdout


def test_diagram_quoting_of_quotes_backslashes_and_hashes():
    from orchestrator.diagrams import dot_quote, mermaid_quote

    assert dot_quote('we"ird [x].txt') == '"we\\"ird [x].txt"'
    assert dot_quote("C:\\data\\") == '"C:\\\\data\\\\"'  # a final backslash must not eat the quote
    assert dot_quote("two\nlines") == '"two\\nlines"'
    assert mermaid_quote('we"ird #1;') == '"we#quot;ird #35;1;"'
    assert mermaid_quote("two\nlines") == '"two lines"'
    # Mermaid renders labels as HTML: a file named `<b>x</b>&lt;.csv` must show as it is, not bold.
    assert mermaid_quote("<b>x</b>&lt;.csv") == '"#60;b#62;x#60;/b#62;#38;lt;.csv"'


def test_p_dates_and_enums_reach_the_steps(orch, calls, project):
    (project / "typed.py").write_text(
        "import datetime, enum\n"
        "from orchestrator import pipeline, step\n"
        "class Level(enum.IntEnum):\n    LOW = 1\n    HIGH = 2\n"
        "@step\ndef describe(dt: datetime.datetime, day: datetime.date, lev: Level) -> str:\n"
        "    return f'{dt.isoformat()} {day.isoformat()} {lev.name}'\n"
        "@pipeline\ndef typed(dt: datetime.datetime = datetime.datetime(2024, 1, 1),\n"
        "          day: datetime.date = datetime.date(2024, 1, 1), lev: Level = Level.LOW):\n"
        "    return describe(dt, day, lev)\n"
    )
    for lev in ("2", "HIGH"):
        good = orch("run", "typed.py", "-p", "dt=2024-05-06T10:11:12", "-p", "day=2024-02-03", "-p", f"lev={lev}",
                    "--json")
        assert good.returncode == 0, good.stderr
        assert json.loads(good.stdout)["params"] == {"dt": "2024-05-06 10:11:12", "day": "2024-02-03", "lev": 2}
    (project / "p.json").write_text('{"dt": "2024-05-06T10:11:12", "day": "2024-02-03", "lev": "HIGH"}')
    assert orch("run", "typed.py", "--params", "p.json").returncode == 0
    bad = orch("run", "typed.py", "-p", "day=tomorrow")
    assert bad.returncode == 2
    assert bad.stderr == "error: parameter 'day': expected an ISO 8601 date like 2024-05-06, got tomorrow.\n"


def test_cache_ls_verify_gc(orch, calls, project, store):
    big = project / "big.py"
    big.write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef make(n: int) -> bytes:\n    return bytes(range(256)) * n\n"
        "@pipeline\ndef big(n: int = 100):\n    return make(n)\n"
    )
    run_once_per_session(orch, "big.py")
    listed = json.loads(orch("cache", "ls", "--json").stdout)
    files = [o for o in listed if o["path"]]
    assert len(files) == 1 and set(files[0]) >= {"hash", "size", "type", "path"}
    assert orch("cache", "verify").returncode == 0
    from pathlib import Path

    path = Path(files[0]["path"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    verify = orch("cache", "verify")
    assert verify.returncode == 1
    assert files[0]["hash"] in verify.stdout
    assert orch("run", "big.py", "-p", "n=101").returncode == 0
    gc = orch("cache", "gc", "--keep-last", "1")
    assert gc.returncode == 0 and "removed 1 artifact (" in gc.stdout and "kept those of 1 run\n" in gc.stdout
    assert not path.exists()


def test_a_folder_at_an_objects_path_is_listed_repaired_and_recomputed(orch, calls, project, store):
    (project / "big.py").write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef make(n: int) -> bytes:\n    return bytes(range(256)) * n\n"
        "@step\ndef size(b: bytes) -> int:\n    return len(b)\n"
        "@pipeline\ndef big(n: int = 100):\n    return size(make(n))\n"
    )
    run_once_per_session(orch, "big.py")
    [made] = [o for o in json.loads(orch("cache", "ls", "--json").stdout) if o["path"]]
    from pathlib import Path

    path = Path(made["path"])
    path.unlink()
    path.mkdir()
    verify = orch("cache", "verify")
    assert verify.returncode == 1 and f"damaged {made['hash']}: not a file: a folder is at its path" in verify.stdout
    # exit 1 and a count alone left the user to find the fix in the docs
    assert verify.stderr.splitlines()[-1] == ("2 objects checked, 1 damaged: `orch cache verify --repair` removes "
                                              "it, and the next run recomputes it"), verify.stderr
    doctor = orch("doctor")
    assert "a folder is at its path" in doctor.stdout and "Traceback" not in doctor.stderr
    rerun = orch("run", "big.py", "--rerun", "make")  # publishing the object over the folder
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr
    assert path.is_file() and orch("cache", "verify").returncode == 0
    path.unlink()
    path.mkdir()
    assert orch("cache", "verify", "--repair").returncode == 0 and not path.exists()
    again = orch("run", "big.py")  # the next run recomputes the object that was removed
    assert again.returncode == 0 and path.is_file() and orch("cache", "verify").returncode == 0, again.stderr


@pytest.mark.parametrize("folder", ["objects", "tmp"])
def test_a_file_where_the_store_keeps_a_folder_is_one_line_before_anything_runs(orch, calls, store, folder):
    # It failed each step that writes an object with a bare "[Errno 17] File exists" (exit 1),
    # while `orch doctor` called the store healthy.
    run_once_per_session(orch, "chatty.py")
    import shutil

    shutil.rmtree(store / folder, ignore_errors=True)
    (store / folder).write_text("not a folder")
    before = (store / "metadata.db").read_bytes()
    for args in (("run", "chatty.py", "-p", "x=2"), ("doctor",), ("runs",)):
        result = orch(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr == (f"error: the store's {folder}/ ({store / folder}) is a file, not a folder: the "
                                 f"store keeps {'its stored objects' if folder == 'objects' else 'the objects being written'}"
                                 " there. Move the file aside, then run the same command again.\n"), result.stderr
    assert (store / "metadata.db").read_bytes() == before and (store / folder).read_text() == "not a folder"
    (store / folder).unlink()
    assert orch("run", "chatty.py", "-p", "x=2").returncode == 0


@pytest.mark.parametrize("given", ["", "  "])
def test_an_empty_store_or_metadata_is_refused_not_taken_as_not_given(tmp_path, monkeypatch, capsys, given):
    # `orch --store "$STORE" run ...` with $STORE unset ran in ./cache, a new, empty store that
    # re-ran every step; a blank one made a folder named by spaces.
    from orchestrator import pipeline, step
    from orchestrator.errors import UserError

    monkeypatch.chdir(tmp_path)
    assert _main("--store", given, "run", str(PIPELINES / "chatty.py")) == 2
    assert capsys.readouterr().err == ("error: --store is empty (an unset shell variable?): pass --store DIR, or "
                                       "leave it out for ORCH_STORE, the project's [tool.orchestrator] store, "
                                       "or ./cache.\n")
    assert _main("--metadata", given, "runs") == 2
    assert capsys.readouterr().err.startswith("error: --metadata is empty (an unset shell variable?): pass "
                                              "--metadata PATH, or leave it out for the metadata.db in the store")
    assert list(tmp_path.iterdir()) == []  # no ./cache, no folder named by spaces

    @step
    def one() -> int:
        return 1

    @pipeline
    def p():
        return one()

    with pytest.raises(UserError, match=r"^store= is empty: pass store=DIR, or leave it out"):
        p.run(store=given)
    assert list(tmp_path.iterdir()) == []


def test_a_relative_store_that_is_not_found_names_the_folder_it_was_looked_for_in(orch, store, tmp_path, monkeypatch,
                                                                                  capsys):
    # `ORCH_STORE=cache` set at the project root, then `orch runs` from a subfolder: "no store at
    # cache" alone did not say that it was looked for in the subfolder.
    assert orch("run", "chatty.py").returncode == 0
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    monkeypatch.setenv("ORCH_STORE", "cache")
    assert _main("runs") == 2
    assert capsys.readouterr().err == (f"error: no store at cache (no metadata.db) in the current folder {sub}, from "
                                       "ORCH_STORE: run a pipeline first with orch run FILE, or pass --store DIR\n")
    monkeypatch.delenv("ORCH_STORE")
    assert _main("--store", os.path.relpath(store, sub), "runs") == 0  # relative to here, it is found
    assert list(sub.iterdir()) == []


def test_an_objects_folder_linked_to_nothing_is_refused_before_repair_drops_every_record(orch, store, tmp_path):
    # objects/ a symbolic link to a share not mounted: every object looked missing, and
    # `orch cache verify --repair` dropped the records of all of them.
    (orch.cwd / "big.py").write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef make(n: int) -> bytes:\n    return bytes(range(256)) * n\n"
        "@pipeline\ndef big(n: int = 100):\n    return make(n)\n"
    )
    assert orch("run", "big.py").returncode == 0
    (store / "objects").rename(tmp_path / "share")
    (store / "objects").symlink_to(tmp_path / "unmounted")
    for args in (("cache", "verify", "--repair"), ("run", "big.py"), ("doctor",)):
        result = orch(*args)
        assert result.returncode == 2 and result.stderr == (
            f"error: the store's objects/ ({store / 'objects'}) is a symbolic link to {tmp_path / 'unmounted'}, which "
            "does not exist (a share not mounted?). Mount or create it, then run the same command again.\n"), args
    (tmp_path / "share").rename(tmp_path / "unmounted")  # mounted again: nothing was lost
    verify = orch("cache", "verify")
    assert verify.returncode == 0 and "checked, 0 damaged" in verify.stderr, verify.stderr


def test_help_is_fast_and_light():
    import subprocess
    import sys

    code = ("import sys, orchestrator, orchestrator.cli;"
            "print(','.join(m for m in ('pandas','pyarrow','sklearn','numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
    help_out = subprocess.run([sys.executable, "-m", "orchestrator", "--help"], capture_output=True, text=True)
    assert help_out.returncode == 0 and "lineage" in help_out.stdout


def test_run_with_a_map_prints_a_summary_of_step_calls(orch, calls):
    result = orch("run", "fanout.py:fanout")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr
    assert ": 2 steps + mapped items" in result.stderr
    assert "square.map" not in result.stderr  # the map has no row, as in Run.steps
    assert "succeeded (6 ran)" in result.stderr
    rows = {line.split()[0] for line in result.stderr.splitlines() if line.split()[1:2] == ["ran"]}
    assert {"items", "square", "square_2", "square_3", "square_4", "total"} <= rows
    cached = orch("run", "fanout.py:fanout")
    assert cached.returncode == 0 and "succeeded (6 cached)" in cached.stderr


def test_run_with_a_map_that_cannot_expand_shows_the_map_failure(orch, calls):
    result = orch("run", "fanout.py:bad_map")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "failed (1 ran, 1 failed, 1 skipped)" in result.stderr
    assert "square.map() needs a list" in result.stderr


# Every command except these only reads a store; with a missing one each must say so and create nothing.
_READERS = [
    ("runs",), ("runs", "--json"), ("show", "latest"), ("diff",), ("diff", "a1", "b2", "--json"), ("logs", "latest:plain"),
    ("lineage", "latest"),
    ("cache", "ls"), ("cache", "du"), ("cache", "verify"), ("cache", "gc"), ("doctor",), ("doctor", "--json"),
    ("models", "ls"), ("models", "show", "churn"), ("models", "promote", "churn@1"),
    ("models", "rollback", "churn"), ("serve", "churn"), ("monitor", "churn"),
]


def _leaf_commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_reading_command_is_checked_for_a_missing_store():
    from orchestrator.cli import cli

    covered = {tuple(args[:2]) if args[0] in ("cache", "models") else args[:1] for args in _READERS}
    assert set(_leaf_commands(cli)) - {("run",), ("plan",), ("dag",)} == covered


def _main(*args):
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return exit_.value.code


@pytest.mark.parametrize("args", _READERS, ids=" ".join)
def test_reading_commands_refuse_a_missing_store_and_create_nothing(tmp_path, capsys, args):
    missing = tmp_path / "nostore"
    assert _main("--store", str(missing), *args) == 2
    err = capsys.readouterr().err
    assert err == (f"error: no store at {missing} (no metadata.db): run a pipeline first with orch run FILE, "
                   "or pass --store DIR\n")
    assert not missing.exists()
    missing.mkdir()  # a folder without a metadata database is no store either
    assert _main("--store", str(missing), *args) == 2
    assert "no store at" in capsys.readouterr().err
    assert list(missing.iterdir()) == []


def test_missing_metadata_database_of_a_store_url(tmp_path, capsys):
    pytest.importorskip("fsspec")
    meta = tmp_path / "meta"
    code = _main("--store", f"file://{tmp_path / 'remote'}", "--metadata", str(meta), "runs")
    assert code == 2
    err = capsys.readouterr().err
    assert f"no metadata database {meta / 'metadata.db'}" in err and "--metadata PATH" in err
    assert not meta.exists() and not (tmp_path / "remote").exists()


def test_commands_read_a_store_that_a_run_created(orch, calls):
    assert orch("runs").returncode == 2
    assert orch("run", "edits.py").returncode == 0
    for args in (("runs",), ("doctor",), ("cache", "ls"), ("models", "ls")):
        result = orch(*args)
        assert result.returncode == 0, (args, result.stderr)


def test_show_cuts_long_parameter_values_to_one_line(orch, calls, project):
    (project / "text.py").write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef length(s: str) -> int:\n    return len(s)\n"
        "@pipeline\ndef text(s: str = 'x', note: str = ''):\n    return length(s)\n"
    )
    value = "[red]ab\n" * 12_500  # 100 KB over many lines, with something that looks like markup
    assert orch("run", "text.py", "-p", f"s={value}", "-p", "note=two\nlines").returncode == 0
    shown = orch("show", "latest")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) < 10 and max(map(len, lines)) < 300
    params = next(line for line in lines if line.startswith("  params "))
    assert "s=[red]ab\\n[red]ab" in params and "…" in params and "note=two\\nlines" in params
    full = json.loads(orch("show", "latest", "--json").stdout)
    assert full["params"]["s"] == value
    listed = orch("runs")
    assert listed.returncode == 0 and max(map(len, listed.stdout.splitlines())) < 300


def test_params_file_values_get_the_same_type_check_as_p(orch, calls, project):
    (project / "p.json").write_text('{"n": 3.7}')
    bad = orch("run", "edits.py", "--params", "p.json")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr == "error: parameter 'n' in p.json: expected an integer like 3, got 3.7.\n"
    (project / "p.toml").write_text('n = "3"\n')
    bad = orch("run", "edits.py", "--params", "p.toml")
    assert bad.returncode == 2 and "parameter 'n' in p.toml: expected an integer like 3, got \"3\"" in bad.stderr
    (project / "p.json").write_text('{"n": 3.0}')
    good = orch("run", "edits.py", "--params", "p.json", "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["params"] == {"n": 3}


def test_p_list_parameter_needs_a_json_list(orch, calls, project):
    (project / "depths.py").write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef count(depths: list) -> int:\n    return len(depths)\n"
        "@pipeline\ndef depths(depths: list = [1]):\n    return count(depths)\n"
    )
    for text, got in (('{"a":1}', '{"a":1}'), ('"ab"', '"ab"'), ("ab", "ab (not JSON)")):
        bad = orch("run", "depths.py", "-p", f"depths={text}")
        assert bad.returncode == 2
        assert bad.stderr == f"error: parameter 'depths': expected a JSON list like [1, 2], got {got}.\n"
    good = orch("run", "depths.py", "-p", "depths=[3, 4]", "--json")
    assert good.returncode == 0 and json.loads(good.stdout)["params"] == {"depths": [3, 4]}


PACKAGED_PIPELINE = """
from orchestrator import pipeline, step
from ..features import clean
from ..features.clean import FACTOR


@step
def prepare(n: int) -> list:
    from tests.pipelines.recorder import record
    record("prepare")
    return clean.scaled(n)


@step
def total(xs: list) -> int:
    from tests.pipelines.recorder import record
    record("total")
    return sum(xs) * FACTOR


@pipeline
def training(n: int = 3):
    return total(prepare(n))
"""


def _packaged_project(project: Path) -> Path:
    """A src-layout package whose pipeline module imports its helpers relatively."""
    package = project / "src" / "churnlab"
    for sub in ("", "features", "pipelines"):
        (package / sub).mkdir(parents=True, exist_ok=True)
        (package / sub / "__init__.py").write_text("")
    (package / "utils.py").write_text("def double(x):\n    return 2 * x\n")
    (package / "features" / "clean.py").write_text(
        "from ..utils import double\nFACTOR = 1\n\ndef scaled(n):\n    return [double(i) for i in range(n)]\n")
    (package / "pipelines" / "train.py").write_text(PACKAGED_PIPELINE)
    return package


def test_a_package_module_with_relative_imports_runs_as_its_package_module(orch, calls, project):
    package = _packaged_project(project)
    first = orch("run", "src/churnlab/pipelines/train.py")
    assert first.returncode == 0, first.stderr
    assert calls.ran() == {"prepare", "total"}
    calls.clear()
    # From another folder, with the process executor, and imported from Python: the same keys.
    again = Orch(orch.store, package / "pipelines", orch.env)("run", "train.py", "--executor", "process",
                                                              "--workers", "1")
    assert again.returncode == 0, again.stderr
    env = {**orch.env, "PYTHONPATH": os.pathsep.join([orch.env["PYTHONPATH"], str(project / "src")])}
    imported = subprocess.run(
        [sys.executable, "-c", "from churnlab.pipelines.train import training; import sys; "
         "print(training.run(store=sys.argv[1]).steps['total'].status)", str(orch.store)],
        cwd=project.parent, env=env, capture_output=True, text=True, timeout=120)
    assert imported.stdout.strip() == "cached", imported.stderr
    assert calls.ran() == set()
    (package / "utils.py").write_text("def double(x):\n    return 3 * x\n")
    edited = orch("run", "src/churnlab/pipelines/train.py", "--json")
    assert edited.returncode == 0, edited.stderr
    assert calls.ran() == {"prepare", "total"}
    reasons = {s["name"]: s["reason"] for s in json.loads(edited.stdout)["steps"]}
    assert reasons["prepare"] == "code of `utils.double` changed"


def test_relative_import_outside_a_package_gets_a_hint(orch, project):
    (project / "loose").mkdir()
    (project / "loose" / "mod.py").write_text("from .helpers import f\n")
    result = orch("run", "loose/mod.py")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "attempted relative import with no known parent package" in result.stderr
    assert "mod.py is not in a package (no __init__.py beside it)" in result.stderr
    pkg = project / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("from ..helpers import f\n")
    result = orch("run", "pkg/mod.py")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "mod.py is in package 'pkg'" in result.stderr and "must stay inside it" in result.stderr


def test_logs_of_a_timed_out_attempt_show_why_it_failed(orch, calls):
    assert orch("run", "flaky.py:timeouts", "-p", "seconds=30").returncode == 1
    out = orch("logs", "latest:hangs")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("--- error ---") == 2  # two attempts, each stopped by its timeout
    assert "did not finish within its timeout of 0.5 s" in out.stdout


@pytest.mark.parametrize("args", [("run", "chatty.py", "--verbose", "--json"), ("plan", "chatty.py", "--json"),
                                  ("dag", "chatty.py", "--format", "dot")])
def test_what_user_code_prints_never_mixes_into_a_document_on_stdout(orch, args):
    result = orch(*args)
    assert result.returncode == 0, result.stderr
    if args[0] != "dag":
        json.loads(result.stdout)  # exactly one JSON document
    else:
        assert result.stdout.startswith("digraph")
    assert "loading chatty.py" in result.stderr
    if args[0] == "run":
        assert "talking about 1" in result.stderr


def test_logs_of_a_cached_step_name_the_run_that_computed_it(orch):
    first = json.loads(orch("run", "chatty.py", "--json").stdout)["run_id"]
    orch("run", "chatty.py")
    out = orch("logs", "latest:talk")
    assert out.returncode == 0
    assert f"reused the result of run {first}" in out.stdout
    assert f"orch logs {first}:talk" in out.stdout
    assert "talking about 1" in orch("logs", f"{first}:talk").stdout


def test_logs_json_is_one_document_of_the_attempts_a_tool_can_read(orch, calls):
    """`orch logs --json`: every attempt with its captured text, or the run a cached step reused."""
    assert orch("run", "flaky.py:timeouts", "-p", "seconds=30").returncode == 1
    doc = json.loads(orch("logs", "latest:hangs", "--json").stdout)
    assert (doc["step"], doc["status"], doc["cached_from"]) == ("hangs", "failed", None)
    assert [(a["attempt"], a["status"], a["recorded"]) for a in doc["attempts"]] == [
        (1, "failed", True), (2, "failed", True)]
    assert all("did not finish within its timeout of 0.5 s" in a["error"] for a in doc["attempts"])
    assert set(doc["attempts"][0]) == {"attempt", "status", "started", "ended", "error", "traceback", "stdout",
                                       "stderr", "logs", "recorded"}
    second = json.loads(orch("logs", "latest:hangs", "--json", "--attempt", "2").stdout)
    assert [a["attempt"] for a in second["attempts"]] == [2]
    missing = orch("logs", "latest:hangs", "--json", "--attempt", "5")
    assert missing.returncode == 2 and missing.stdout == ""
    assert "has no attempt 5; its attempts: 1, 2" in missing.stderr

    first = json.loads(orch("run", "chatty.py", "--json").stdout)["run_id"]
    orch("run", "chatty.py")
    cached = json.loads(orch("logs", "latest:talk", "--json").stdout)
    assert (cached["status"], cached["cached_from"], cached["attempts"]) == ("cached", f"{first}:talk", [])
    ran = json.loads(orch("logs", f"{first}:talk", "--json").stdout)
    assert "talking about 1" in ran["attempts"][0]["stdout"]


def test_dag_takes_a_params_file_like_run_and_plan(orch, project):
    (project / "p.toml").write_text("n = 3\n")
    tree = orch("dag", "fanout.py:squares", "--params", "p.toml")
    assert tree.returncode == 0, tree.stderr
    (project / "typo.toml").write_text("nn = 3\n")
    typo = orch("dag", "fanout.py:squares", "--params", "typo.toml")
    assert typo.returncode == 2 and "nn" in typo.stderr  # the file is read, and checked
    bad = orch("dag", "fanout.py:squares", "--params", "missing.toml")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def _empty_store(store):
    from orchestrator.context import Context

    lineage = Context.open(store).lineage
    lineage.integrity_check()  # the database is made on first use
    lineage.close()


def _one_line(result):
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_runs_of_a_pipeline_in_a_store_without_runs_is_no_mistake(orch, store):
    _empty_store(store)
    result = orch("runs", "--pipeline", "edits")
    assert result.returncode == 0 and "no runs yet" in result.stdout


def test_lineage_names_an_ambiguous_prefix_like_show_does(orch, store):
    import sqlite3

    run_once_per_session(orch, "edits.py")
    db = sqlite3.connect(store / "metadata.db")
    with db:  # runs and an artifact whose ids begin alike
        db.executemany("INSERT INTO runs (run_id, pipeline, status, started) VALUES (?, 'edits', 'succeeded', 0)",
                       [("abc000000001",), ("abc000000002",), ("abc100000000",)])
        db.execute("INSERT INTO artifacts (digest, type, size) VALUES (?, 'int', 1)", ("abc1" + "2" * 28,))
    db.close()
    expected = {
        "abc": "'abc' is ambiguous: it begins several run ids and a digest. Give more characters",
        "abc0": "'abc0' is ambiguous: it begins several run ids. Give more characters",
        "abc1": "'abc1' is ambiguous: it begins a run id and a digest. Give more characters",
    }
    for ref, needle in expected.items():
        result = orch("lineage", ref)
        assert result.returncode == 2
        assert needle in _one_line(result)
    assert "run id 'abc' is ambiguous" in _one_line(orch("show", "abc"))
    assert orch("lineage", "abc12").returncode == 0  # one digest: no longer ambiguous
    assert orch("lineage", "abc100000000").returncode == 0  # a full run id wins over a digest prefix
    missing = orch("lineage", "fedcba")
    assert missing.returncode == 2 and "no run id or digest in this store begins with 'fedcba'" in _one_line(missing)


def test_store_paths_the_file_system_cannot_take_are_user_mistakes(orch, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for store in (afile / "sub", "/proc/orch-test/store"):
        result = orch("--store", str(store), "run", "edits.py")
        assert result.returncode == 2, result.stderr
        assert f"cannot create the store folder {store}" in _one_line(result)


def test_a_store_behind_a_symbolic_link_to_nothing_names_the_link(orch, tmp_path):
    """`cache -> /mnt/team/store` with the share not mounted: not "cannot create ...: File exists"."""
    link = tmp_path / "linked"
    link.symlink_to(tmp_path / "unmounted" / "store")
    for store, command in ((link, ("run", "edits.py")), (link / "sub", ("run", "edits.py")), (link, ("runs",))):
        result = orch("--store", str(store), *command)
        assert result.returncode == 2, result.stderr
        assert f"{link} is a symbolic link to {tmp_path / 'unmounted' / 'store'}, which does not exist" \
            in _one_line(result)
    assert not (tmp_path / "unmounted").exists()


def test_an_unopenable_database_names_the_file_and_that_sqlite_needs_write_access(orch, store):
    assert orch("run", "edits.py").returncode == 0
    database = store / "metadata.db"
    assert not (store / "metadata.db-wal").exists()
    (store / "metadata.db-wal").mkdir()  # SQLite cannot open its WAL: what a read-only store does as non-root
    for command in (("runs",), ("doctor",), ("run", "edits.py")):
        result = orch(*command)
        assert result.returncode == 2, result.stderr
        line = _one_line(result)
        assert f"cannot open the metadata database {database}: unable to open database file" in line
        assert f"SQLite needs write access to the folder {store}" in line and "-wal, -shm" in line
        assert "chmod" in line and "--store" in line


def _not_writable_for_me(monkeypatch, *paths: Path) -> None:
    """``paths`` are not writable for this process, as a teammate's files are (root may write any file)."""
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        real = os.access
        names = {str(p) for p in paths}
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **kw: not (mode & os.W_OK and os.fspath(p) in names)
                            and real(p, mode, *a, **kw))


def test_a_teammates_store_is_read_without_leaving_files_that_lock_its_owner_out(orch, store, project,
                                                                                   monkeypatch, capsys):
    """Its database not writable for me: reading works and creates no -wal/-shm of mine (which the owner's
    SQLite could not write, so that every run of theirs would fail); a run says what is not writable."""
    from orchestrator.cli import main
    from orchestrator.context import Context

    assert orch("run", "edits.py").returncode == 0
    database = store / "metadata.db"
    _not_writable_for_me(monkeypatch, database)
    try:
        reader = Context.open(store).lineage
        assert [r["pipeline"] for r in reader.runs()] == ["edits"]
        assert not (store / "metadata.db-wal").exists() and not (store / "metadata.db-shm").exists()
        reader.close()
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), "show", "latest"])
        assert exited.value.code == 0, capsys.readouterr().err
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), "run", str(project / "edits.py")])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.count("\n") == 1, err
        assert f"{database} is not writable for you" in err and "Commands that read" in err and "--store COPY" in err
    finally:
        database.chmod(0o644)


def test_a_read_only_store_folder_is_read_and_a_run_names_the_folder(orch, store, project, monkeypatch, capsys):
    from orchestrator.cli import main

    assert orch("run", "edits.py").returncode == 0
    _not_writable_for_me(monkeypatch, store / "metadata.db", store)
    try:
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), "lineage", "latest:plain", "--upstream"])
        assert exited.value.code == 0, capsys.readouterr().err
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), "run", str(project / "edits.py")])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and f"the folder {store} is not writable for you" in err, err
    finally:
        store.chmod(0o755)
        (store / "metadata.db").chmod(0o644)


def test_plan_reads_a_read_only_store_whose_file_memo_lacks_an_input(orch, store, project, monkeypatch, capsys):
    """The read-only error names `plan` among the commands that work on such a store, yet a plan whose input
    file the store's memo of file hashes did not hold (an edited file, a copied project) stopped there."""
    from orchestrator.cli import main

    (project / "input.txt").write_text("hello")
    assert orch("run", "files.py").returncode == 0
    (project / "input.txt").write_text("hello again")  # its hash is not in the memo yet
    monkeypatch.setattr("orchestrator.hashing._RACY_NS", 0)  # memoised at once, not 2 s after its last write
    _not_writable_for_me(monkeypatch, store / "metadata.db", store)
    monkeypatch.chdir(project)
    try:
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), "plan", "files.py"])
        out, err = capsys.readouterr()
        assert exited.value.code == 0, err
        assert "content of file `path` changed" in out, out
    finally:
        store.chmod(0o755)
        (store / "metadata.db").chmod(0o644)


def test_a_read_only_database_is_explained(tmp_path):
    import sqlite3

    from orchestrator.errors import DatabaseAccessError
    from orchestrator.lineage_schema import database_error

    store = tmp_path / "store"
    _empty_store(store)
    conn = sqlite3.connect(f"file:{store / 'metadata.db'}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as raised:
        conn.execute("INSERT INTO meta VALUES ('x', 'y')")
    conn.close()
    error = database_error(store / "metadata.db", raised.value)
    assert isinstance(error, DatabaseAccessError) and error.exit_code == 2
    assert str(error).startswith(f"cannot open the metadata database {store / 'metadata.db'}: attempt to write a "
                                 "readonly database. SQLite needs write access to the folder")


def test_damage_met_after_opening_is_one_line(tmp_path, capsys, monkeypatch):
    import sqlite3

    from orchestrator.lineage_db import Lineage

    store = tmp_path / "store"
    _empty_store(store)

    def damaged(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Lineage, "runs", damaged)
    assert _main("--store", str(store), "runs") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the metadata database {store / 'metadata.db'} is damaged (database disk image "
                          "is malformed). Check the objects with `orch doctor`")
    assert len(err.splitlines()) == 1


def test_a_full_disk_met_while_a_run_commits_is_one_line_and_the_next_run_resumes(
        tmp_path, project, calls, capsys, monkeypatch):
    import sqlite3

    from orchestrator.lineage_db import Lineage

    store = tmp_path / "store"
    target = str(project / "edits.py")
    real_flush = Lineage._flush
    commits = []

    def full(self):
        commits.append(1)
        if len(commits) == 2:  # the first commit made the run's row: the disk fills after it
            raise sqlite3.OperationalError("database or disk is full")
        real_flush(self)

    monkeypatch.setattr(Lineage, "_flush", full)
    assert _main("--store", str(store), "run", target) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [line for line in err.splitlines() if "error" in line.lower()] and len(errors) == 1, err
    assert errors[0].startswith(f"error: cannot write the metadata database {store / 'metadata.db'}: database or "
                                "disk is full: the ")
    assert "run the same command again" in errors[0] and "Traceback" not in err
    monkeypatch.setattr(Lineage, "_flush", real_flush)
    capsys.readouterr()
    assert _main("--store", str(store), "run", target) == 0


def test_a_failing_disk_under_the_database_is_named(tmp_path, monkeypatch):
    import shutil
    import sqlite3
    import types

    from orchestrator.errors import DatabaseWriteError
    from orchestrator.lineage_schema import database_error

    path = tmp_path / "metadata.db"
    error = database_error(path, sqlite3.OperationalError("disk I/O error"))
    assert isinstance(error, DatabaseWriteError) and error.exit_code == 2
    assert "the disk holding" in str(error) and "failed" in str(error)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: types.SimpleNamespace(total=10, used=10, free=0))
    full = str(database_error(path, sqlite3.OperationalError("disk I/O error")))
    assert f"the file system holding {tmp_path} is full (0 bytes free)" in full
    assert "`orch cache du` shows what the store takes, `orch cache gc --keep-last N` removes" in full


def _too_full_for_the_shm() -> None:
    """In the child: no file may grow past 1 byte, as on a full disk (SQLite cannot size its -shm)."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="POSIX file size limit")
def test_reading_commands_work_on_a_disk_too_full_for_the_shared_memory_file(orch, store):
    # A full disk made every command fail as "disk I/O error", reading ones included, since
    # every reader of a WAL database needs its -shm file: `orch cache gc`, the command that
    # frees space, and `orch doctor` too. A run still stops with one line (exit 2).
    import sqlite3

    assert orch("run", "chatty.py").returncode == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with sqlite3.connect(store / "metadata.db") as conn:  # a run whose process died: `runs` marks it, space allowing
        conn.execute("INSERT INTO runs (run_id, pipeline, status, started, host, pid) VALUES "
                     "('deadbeef0000', 'chatty', 'running', 1, ?, ?)", (os.uname().nodename, int(dead.stdout)))
    conn.close()

    def full(*args):
        return subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(store), *args], cwd=orch.cwd,
                              env=orch.env, capture_output=True, text=True, preexec_fn=_too_full_for_the_shm)

    runs = full("runs")
    assert runs.returncode == 0 and "deadbeef0000" in runs.stdout and runs.stderr == "", runs.stderr
    for args in (("show", "latest"), ("plan", "chatty.py"), ("doctor",), ("cache", "verify"), ("cache", "gc")):
        result = full(*args)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr)
    run = full("run", "chatty.py", "-p", "x=9")
    assert run.returncode == 2 and run.stderr.startswith("error: cannot write the metadata database ")
    assert len(run.stderr.splitlines()) == 1 and "Free some space" in run.stderr
    statuses = {r["run_id"]: r["status"] for r in json.loads(orch("runs", "--json").stdout)}
    assert statuses["deadbeef0000"] == "interrupted"  # with room again, the next command marks it


def test_cache_gc_frees_space_on_a_disk_too_full_for_the_shared_memory_file(orch, project, store, monkeypatch,
                                                                            capsys):
    # What SQLite says when it cannot size the -shm file of a full disk, in place of a full disk.
    import sqlite3

    from orchestrator import lineage_schema

    (project / "big.py").write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef make(n: int) -> bytes:\n    return bytes(range(256)) * n\n"
        "@pipeline\ndef big(n: int = 100):\n    return make(n)\n"
    )
    assert orch("run", "big.py").returncode == 0 and orch("run", "big.py", "-p", "n=101").returncode == 0

    def no_shm(conn, path):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(lineage_schema, "_enable_wal", no_shm)
    assert _main("--store", str(store), "cache", "gc", "--keep-last", "1") == 0
    assert "removed 1 artifact (" in capsys.readouterr().out
    import gc

    gc.collect()  # as the command's process ends: its connection, which holds the lock, is closed
    assert _main("--store", str(store), "cache", "gc", "--keep-last", "1") == 0  # its rows went with the object
    assert "removed 0 artifacts" in capsys.readouterr().out
    assert _main("--store", str(store), "run", str(PIPELINES / "chatty.py")) == 2  # a run is not let in
    assert capsys.readouterr().err.startswith("error: cannot write the metadata database ")


def test_a_store_from_a_newer_version_is_refused_with_exit_2_and_left_as_it_is(orch, store):
    import sqlite3

    assert orch("run", "chatty.py").returncode == 0
    with sqlite3.connect(store / "metadata.db") as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.close()
    before = (store / "metadata.db").read_bytes()
    for args in (("runs",), ("run", "chatty.py")):
        result = orch(*args)
        assert result.returncode == 2
        assert "written by a newer orchestrator (schema 99" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (store / "metadata.db").read_bytes() == before


def test_runs_on_a_narrow_terminal_wraps_metrics_instead_of_cutting_their_values(tmp_path, monkeypatch, capsys):
    """Piped output is 80 columns wide: `evaluate.accurac…` hid every value."""
    from orchestrator import Metrics, pipeline, step
    from orchestrator.cli import main

    @step
    def evaluate(seed: int) -> Metrics:
        return Metrics(validation_accuracy=0.8125, validation_roc_auc=0.9375)

    @pipeline
    def scored(seed: int = 1):
        return evaluate(seed)

    store = str(tmp_path / "store")
    assert scored.run(store=store).status == "succeeded"
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exited:
        main(["--store", store, "runs"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    lines = out.splitlines()
    column = lines[0].index("metrics")
    flat = "".join(line[column:].strip() for line in lines[1:])
    assert "0.8125" in flat and "0.9375" in flat


def test_plan_of_a_big_map_folds_its_items_into_one_row(orch, calls):
    assert orch("run", "fanout.py:fanout", "-p", "n=50").returncode == 0
    result = orch("plan", "fanout.py:fanout", "-p", "n=50", "-p", "offset=1")
    assert result.returncode == 0, result.stderr
    rows = [line.split("  ")[0] for line in result.stdout.splitlines()[1:4]]
    assert rows == ["items", "square … square_50 (50)", "total"]
    assert "52 steps in 3 rows (alike calls of one step share a row; orch plan --json lists each)" in result.stdout
    assert "50 will run" in result.stdout


def test_plan_takes_the_no_cache_of_run_and_says_what_it_would_run(orch, calls):
    """A script passing its run flags to `orch plan` first got "No such option '--no-cache'"."""
    assert orch("run", "diamond.py").returncode == 0
    result = orch("plan", "diamond.py", "--no-cache", "--json")
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    assert len(steps) == 4 and {(s["status"], s["reason"]) for s in steps} == {
        ("will run", "caching turned off for this run (--no-cache)")}
    assert {s["status"] for s in json.loads(orch("plan", "diamond.py", "--json").stdout)["steps"]} == {"cached"}


def test_a_relative_path_beside_the_pipeline_file_but_not_here_is_warned_about(orch, project, tmp_path):
    """Run from another folder, Path("input.txt") names nothing: the warning gives both fixes."""
    (project / "input.txt").write_text("hello")
    elsewhere = Orch(orch.store, tmp_path, orch.env)
    result = elsewhere("plan", "project/files.py")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"warning: parameter 'path' is input.txt, which is not in the current folder {tmp_path} but is beside "
        "files.py: run from project, or pass -p path=project/input.txt")
    assert "warning" not in elsewhere("plan", "project/files.py", "-p", "path=project/input.txt").stderr
    assert "warning" not in orch("plan", "files.py").stderr  # run from its folder


def test_a_store_or_metadata_path_starting_with_a_tilde_is_in_the_home_folder(orch, project, tmp_path):
    """As quoted in a .env file or a CI setting: not a folder named `~` in the current folder."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**orch.env, "HOME": str(home)}
    assert Orch(Path("~/store"), project, env)("run", "edits.py").returncode == 0
    assert (home / "store" / "metadata.db").is_file()
    assert Orch(Path("~/other"), project, {**env, "ORCH_METADATA": "~/meta"})("run", "edits.py").returncode == 0
    assert (home / "meta" / "metadata.db").is_file()
    assert not (project / "~").exists()
    from orchestrator.context import store_root

    assert store_root("~/store") == Path(os.path.expanduser("~/store"))


def test_the_metrics_after_a_run_of_a_long_map_are_cut_keeping_those_of_one_node(capsys):
    # Every item of a 2,000-item search reports its accuracy: 2,000 names on one line once.
    from orchestrator.cli import _METRICS_SHOWN, _print_run_metrics

    metrics = {f"evaluate_{i}.accuracy": i / 100 for i in range(2, 2001)}
    metrics |= {"best_accuracy": 19.99, **{f"evaluate_{i}.note": "ok" for i in range(2, 40)}}
    _print_run_metrics(metrics, "abc123")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("metrics best_accuracy=19.99, evaluate_2.accuracy=0.02, ")
    assert lines[0].endswith(f", … and {2000 - _METRICS_SHOWN} more (orch show abc123 lists them)")
    assert lines[1] == "evaluate_2.note: ok" and len(lines) == 2 + _METRICS_SHOWN
    assert lines[-1] == f"… and {38 - _METRICS_SHOWN} more (orch show abc123 lists them)"
    _print_run_metrics({"f1": 0.5, "accuracy": 0.9}, "abc123")
    assert capsys.readouterr().err == "metrics f1=0.5, accuracy=0.9\n"  # a few: all, in their order
    from orchestrator.cli_history import _short_metrics

    assert _short_metrics(metrics) == "best_accuracy=19.99 evaluate_2.accuracy=0.02 evaluate_3.accuracy=0.03 " \
                                      "evaluate_4.accuracy=0.04 … +1996"  # the cell of `orch runs`; `orch show` has all


def test_a_deleted_current_folder_is_one_line_and_absolute_paths_still_work(tmp_path, monkeypatch, capsys, calls):
    """A shell left in a folder someone removed: relative paths (the default store) name nothing."""
    from orchestrator.cli import main

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    for args in (["runs"], ["run", "edits.py"], ["--store", str(tmp_path / "s"), "run", "edits.py"]):
        with pytest.raises(SystemExit) as exited:
            main(args)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.count("\n") == 1, err
        assert "the current folder no longer exists" in err and "change to an existing folder" in err

    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "store"), "run", str(PIPELINES / "edits.py")])
    assert exited.value.code == 0, capsys.readouterr().err


def test_a_deleted_current_folder_is_a_user_error_from_python_too(tmp_path, monkeypatch, calls):
    """A notebook whose folder was removed: a UserError naming it, not a bare FileNotFoundError."""
    import orchestrator
    from orchestrator.errors import UserError
    from orchestrator.loader import load_pipeline

    edits = load_pipeline(str(PIPELINES / "edits.py"))
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    for call in (edits.run, lambda: orchestrator.get_run("latest")):
        with pytest.raises(UserError, match="the current folder no longer exists"):
            call()
    assert edits.run(store=str(tmp_path / "store")).status == "succeeded"


def test_show_and_plan_tell_calls_of_a_long_named_step_apart_in_80_columns(orch):
    orch.env["COLUMNS"] = "80"
    assert orch("run", "long_names.py").returncode == 0
    for args in (("show", "latest"), ("plan", "long_names.py", "-p", "n=2")):
        result = orch(*args)
        assert result.returncode == 0, result.stderr
        names = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("compute")]
        assert [n[-2:] for n in names] == ["nt", "_2", "_3"], result.stdout
        assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_a_file_of_sub_pipelines_suggests_the_pipeline_that_calls_them(tmp_path):
    from orchestrator.errors import LoadError
    from orchestrator.loader import load_pipeline

    (tmp_path / "composed.py").write_text(
        "from orchestrator import pipeline, step\n\n@step\ndef one(n: int) -> int:\n    return n\n\n"
        "@pipeline\ndef features(n: int = 1):\n    return one(n)\n\n"
        "@pipeline\ndef labels(n: int = 1):\n    return one(n)\n\n"
        "@pipeline\ndef main(n: int = 2):\n    return [f(n) for f in (features, labels)]\n")
    with pytest.raises(LoadError) as info:
        load_pipeline(str(tmp_path / "composed.py"))
    assert str(info.value).endswith("defines 3 pipelines (features, labels, main). Choose one: "
                                    f"{tmp_path / 'composed.py'}:main (it calls features, labels)")


def test_show_names_the_run_a_cached_step_was_computed_in(tmp_path, capsys, calls):
    """A cached step's output, logs and lineage are in the run that computed it: `orch show` names it."""
    from orchestrator.cli import main
    from orchestrator.loader import load_pipeline

    store = str(tmp_path / "store")
    pipe = load_pipeline(str(PIPELINES / "two_params.py"))
    first = pipe.run(store=store, x=2, y=3)
    second = pipe.run(store=store, x=2, y=4)  # `first` reused, `second` computed again

    def show(*args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["--store", store, "show", second.id, *args])
        assert done.value.code in (0, None)
        return capsys.readouterr().out

    steps = {s["name"]: s for s in json.loads(show("--json"))["steps"]}
    assert steps["first"]["status"] == "cached" and steps["first"]["computed_by"] == f"{first.id}:first"
    assert steps["second"]["status"] == "ran" and steps["second"]["computed_by"] is None
    assert steps["first"]["reason"] == "cached"  # the reason recorded stays as it was
    table = re.sub(r"\s+", " ", show())
    assert f"cached (from run {first.id})" in table


_DELETES_ITS_STORE = (
    "import os, shutil\nfrom orchestrator import pipeline, step\n\n"
    "@step\ndef first() -> int:\n    return 1\n\n"
    "@step\ndef wipe(x: int) -> int:\n    shutil.rmtree(os.environ['STORE_TO_DELETE'])\n    return x\n\n"
    "@pipeline\ndef deleted():\n    return wipe(first())\n")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_store_deleted_during_orch_run_is_said_once_and_exits_1(tmp_path, capsys, monkeypatch, as_json):
    """rm -rf of the store while orch run ran: the summary said succeeded, then `no store at DIR`, exit 2."""
    from orchestrator.cli import main

    store = tmp_path / "store"
    monkeypatch.setenv("STORE_TO_DELETE", str(store))
    (tmp_path / "deleted.py").write_text(_DELETES_ITS_STORE)
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(store), "run", str(tmp_path / "deleted.py"), *(["--json"] if as_json else [])])
    captured = capsys.readouterr()
    assert exited.value.code == 1
    lines = [line for line in captured.err.splitlines() if "error" in line or "succeeded" in line]
    assert len(lines) == 1 and re.fullmatch(
        rf"error: store {re.escape(str(store))} was deleted while run \w{{12}} ran: the run's records "
        rf"\({re.escape(str(store / 'metadata.db'))}\) and outputs went with it, so nothing of it is kept or "
        r"cached. Run the pipeline again once nothing removes the store meanwhile \(a cleanup job, rm -rf\).",
        lines[0]), captured.err
    assert "no store at" not in captured.err and "Traceback" not in captured.err


def test_a_store_deleted_during_a_run_from_python_is_raised_not_returned_succeeded(tmp_path, monkeypatch):
    from orchestrator.errors import StoreDeletedError
    from orchestrator.loader import load_pipeline

    store = tmp_path / "store"
    monkeypatch.setenv("STORE_TO_DELETE", str(store))
    (tmp_path / "deleted.py").write_text(_DELETES_ITS_STORE)
    with pytest.raises(StoreDeletedError, match="was deleted while run"):
        load_pipeline(str(tmp_path / "deleted.py")).run(store=str(store))


def test_a_run_that_raises_as_it_ends_stops_its_live_progress(tmp_path, monkeypatch, capsys):
    """A store deleted mid-run raised before run_finished, which alone stopped the live bar: in a
    notebook, pipeline.run(progress=True) left its redrawing thread running after the error."""
    from orchestrator.errors import StoreDeletedError
    from orchestrator.loader import load_pipeline
    from orchestrator.report import ConsoleReporter

    class Watched(ConsoleReporter):
        def run_started(self, run_id, dag):
            super().run_started(run_id, dag)
            self.events, self.bar = ["started"], self._progress

        def run_finished(self, run_id, status, results):
            self.events.append("finished")
            super().run_finished(run_id, status, results)

        def run_closed(self, run_id):
            self.events.append("closed")
            super().run_closed(run_id)

    monkeypatch.setenv("TTY_INTERACTIVE", "1")  # the live bar, as a terminal or a notebook shows it
    store = tmp_path / "store"
    monkeypatch.setenv("STORE_TO_DELETE", str(store))
    (tmp_path / "deleted.py").write_text(_DELETES_ITS_STORE)
    reporter = Watched()
    with pytest.raises(StoreDeletedError):
        load_pipeline(str(tmp_path / "deleted.py")).run(store=str(store), progress=reporter)
    assert reporter.bar is not None and not reporter.bar.live.is_started
    assert reporter.events == ["started", "closed"]
    # A run that ends as it should: finished, then closed, and the bar stopped once.
    (tmp_path / "other").mkdir()
    monkeypatch.setenv("STORE_TO_DELETE", str(tmp_path / "other"))  # not its store: the run ends as usual
    reporter = Watched()
    run = load_pipeline(str(tmp_path / "deleted.py")).run(store=str(tmp_path / "kept"), progress=reporter)
    assert run.status == "succeeded"
    assert reporter.events == ["started", "finished", "closed"] and not reporter.bar.live.is_started


def test_a_config_object_parameter_is_recorded_as_the_json_of_its_fields(tmp_path, capsys):
    """`orch show --json` gave a pydantic model parameter as its str(), "lr=0.3 depth=3" (and a dataclass as
    "Cfg(lr=0.3, ...)"): a wrapper could not rebuild `-p cfg={...}` from it. Each is the object of its fields,
    which `-p` takes back to the same run parameters."""
    pytest.importorskip("pydantic")
    (tmp_path / "pp.py").write_text(
        "import dataclasses, datetime, enum\nimport pydantic\nfrom orchestrator import pipeline, step\n\n"
        "class Kind(enum.Enum):\n    TREE = 'tree'\n    LINEAR = 'linear'\n\n"
        "class Cfg(pydantic.BaseModel):\n    lr: float = 0.1\n    depth: int = 1\n    tags: list[str] = []\n"
        "    kind: Kind = Kind.TREE\n    since: datetime.datetime = datetime.datetime(2024, 1, 1)\n\n"
        "@dataclasses.dataclass\nclass Split:\n    test: float = 0.2\n"
        "    seed: int = dataclasses.field(default=0, init=True)\n"
        "    derived: int = dataclasses.field(default=0, init=False)\n\n"
        "@step\ndef fit(cfg: Cfg, split: Split) -> float:\n    return cfg.lr * split.test\n\n"
        "@pipeline\ndef pp(cfg: Cfg = Cfg(), split: Split = Split(), runs: list = [Split()]):\n"
        "    return fit(cfg, split)\n")
    (tmp_path / "p.yml").write_text("cfg:\n  lr: 0.3\n  depth: 3\n  tags: [a]\n  kind: linear\n"
                                    "  since: 2024-05-06T10:30:00\nsplit:\n  seed: 7\n")
    store = str(tmp_path / "store")
    assert _main("--store", store, "run", str(tmp_path / "pp.py"), "--params", str(tmp_path / "p.yml")) == 0
    capsys.readouterr()
    assert _main("--store", store, "show", "latest", "--json") == 0
    params = json.loads(capsys.readouterr().out)["params"]
    assert params == {"cfg": {"lr": 0.3, "depth": 3, "tags": ["a"], "kind": "linear", "since": "2024-05-06 10:30:00"},
                      "split": {"test": 0.2, "seed": 7},
                      "runs": [{"test": 0.2, "seed": 0}]}
    again = [f"{name}={json.dumps(value)}" for name, value in params.items() if name != "runs"]
    assert _main("--store", store, "run", str(tmp_path / "pp.py"), *[a for p in again for a in ("-p", p)]) == 0
    capsys.readouterr()
    assert _main("--store", store, "show", "latest", "--json") == 0
    assert json.loads(capsys.readouterr().out)["params"] == params


def test_a_step_of_the_other_pipeline_sharing_the_store_names_that_pipelines_run(orch, calls):
    """Two pipelines, one store: `latest` is the other pipeline's run, and the step's own run is named."""
    fanned = orch("run", "fanout.py:fanout", "--json")
    assert fanned.returncode == 0, fanned.stderr
    fan_id = json.loads(fanned.stdout)["run_id"]
    assert orch("run", "edits.py").returncode == 0
    edits_id = json.loads(orch("runs", "-n", "1", "--json").stdout)[0]["run_id"]
    for command in ("logs", "lineage"):
        answer = orch(command, "latest:square_2")
        assert answer.returncode == 2 and answer.stderr.count("\n") == 1 and "Traceback" not in answer.stderr
        assert answer.stderr == (f"error: run {edits_id} is a run of pipeline 'edits', which has no step 'square_2'. "
                                 f"The last run with that step is {fan_id}, of pipeline 'fanout': give "
                                 f"{fan_id}:square_2 (`orch runs --pipeline fanout` lists its runs).\n"), command
    assert orch("logs", f"{fan_id}:square_2").returncode == 0


def test_a_parameter_given_twice_with_p_is_refused_before_anything_runs(orch, calls):
    """`-p x=1 -p x=2` ran with x=2 without a word: a pasted command line's stale value won or lost by position."""
    result = orch("plan", "two_params.py", "-p", "x=1", "-p", "x=2")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "parameter 'x' is given twice (-p x=1 and -p x=2). Keep the one you mean." in result.stderr


def test_a_warning_of_the_pipeline_body_is_one_line_naming_its_place(orch, project):
    """Python's two-line display (the source line indented under it) read as a traceback among orch's notes."""
    (project / "warns.py").write_text(
        "import warnings\nfrom orchestrator import pipeline, step\n\n@step\ndef one(x: int) -> int:\n"
        "    return x\n\n@pipeline\ndef warns(x: int = 1):\n    warnings.warn(\"x is deprecated\")\n"
        "    warnings.warn(\"soon\", FutureWarning)\n    return one(x)\n")
    planned = orch("plan", "warns.py")
    assert planned.returncode == 0, planned.stderr
    assert planned.stderr.splitlines() == [
        "warning: x is deprecated (warns.py:10, in the body of pipeline 'warns')",
        "warning: FutureWarning: soon (warns.py:11, in the body of pipeline 'warns')"]


@pytest.mark.parametrize(("args", "said"), [
    # pytest's separator, a module name as `python -m` takes it, Kedro's `--pipeline`
    (("plan", "two_params.py::two_params"),
     "error: 'two_params.py::two_params' has two colons (pytest's separator): write two_params.py:two_params."),
    (("plan", "two_params.py:two_params:x"),
     "error: 'two_params.py:two_params:x' has more than one ':' after the file: write two_params.py:PIPELINE, with "
     "one pipeline's name (here 'two_params:x' follows two_params.py:)."),
    (("plan", "two_params"), "error: pipeline file two_params does not exist. Did you mean two_params.py? orch takes "
                             "the pipeline's file."),
    (("run", "two_params.py", "--pipeline", "two_params"),
     "error: No such option '--pipeline': name the pipeline after its file, `orch run FILE:PIPELINE` (as "
     "train.py:training). See `orch run --help`."),
    # argparse's `-p x 2` and a parameter given to the option that takes a file
    (("plan", "two_params.py", "-p", "x", "2"),
     "error: -p x 2: a parameter is one word, name=value. Write -p x=2. See `orch plan --help`."),
    (("plan", "two_params.py", "--params", "x=2"),
     "error: parameters file x=2 does not exist. To set a parameter, write -p x=2; --params takes a file."),
])
def test_another_tools_habit_on_the_command_line_gets_the_way_to_write_it(orch, args, said):
    result = orch(*args)
    assert result.returncode == 2 and result.stderr.splitlines() == [said]


def _open_files() -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return names


def test_cli_main_called_from_python_closes_the_database_after_each_command(store, project, monkeypatch):
    """A process that calls ``cli.main([...])`` and goes on keeps no file open per command.

    Garbage collection is off: a connection left to it would stay open, as it may for long.
    """
    import gc

    from orchestrator import cli

    def main(*args: str) -> int:
        with pytest.raises(SystemExit) as ended:
            cli.main(["--store", str(store), *args])
        return ended.value.code

    monkeypatch.chdir(project)
    gc.collect()
    gc.disable()
    try:
        opened = 0
        for _ in range(6):
            assert main("run", "diamond.py") == 0
            assert main("runs") == 0
            assert main("show", "latest") == 0
            opened = opened or len(os.listdir("/proc/self/fd"))
        assert len(os.listdir("/proc/self/fd")) == opened, "\n".join(_open_files())
        assert not (store / "metadata.db-wal").exists()
    finally:
        gc.enable()


def test_dag_of_a_big_map_folds_its_items_as_run_and_plan_do(orch, project):
    """2,000 items of a map drew 2,003 lines, the last of 20,000 characters, and a Mermaid diagram of
    6,000 lines that Mermaid refuses (more than its 500 edges): alike calls share a line, and a node."""
    (project / "big.py").write_text(
        "from orchestrator import pipeline, step\n\n"
        "@step\ndef data() -> int:\n    return 1\n\n"
        "@step\ndef train(region: str, d: int) -> str:\n    return region\n\n"
        "@step\ndef gather(models: list) -> int:\n    return len(models)\n\n"
        "REGIONS = [f'r{i}' for i in range(300)]\n\n"
        "@pipeline\ndef big():\n    return gather(train.map(REGIONS, data()))\n")
    tree = orch("dag", "big.py")
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines() == [
        "pipeline big (302 steps)",
        "  data (big.py:19)",
        "  train … train_300 (300) (big.py:19) ← data",
        "  gather (big.py:19) ← train … train_300 (300)",
    ]
    mermaid = orch("dag", "big.py", "--format", "mermaid").stdout.splitlines()
    assert mermaid == ["graph LR", '  n0["data"]', '  n1["train ×300"]', '  n2["gather"]',
                       "  n0 --> n1", "  n1 --> n2"]
    dot = orch("dag", "big.py", "--format", "dot").stdout
    assert '"train ×300" -> "gather";' in dot and len(dot.splitlines()) < 10


def test_a_folded_chain_says_it_is_one_in_the_tree_and_draws_its_link(orch, project):
    """`prev = add(prev, sq(i))` in a loop, folded, read as 30 calls side by side: the links between them went."""
    (project / "chain.py").write_text(
        "from orchestrator import pipeline, step\n\n"
        "@step\ndef sq(x: int) -> int:\n    return x * x\n\n"
        "@step\ndef add(a: int, b: int) -> int:\n    return a + b\n\n"
        "@pipeline\ndef chain():\n    prev = sq(0)\n    for i in range(30):\n        prev = add(prev, sq(i + 1))\n"
        "    return prev\n")
    tree = orch("dag", "chain.py").stdout.splitlines()
    assert tree[-1] == "  add … add_30 (30) (chain.py:15) ← sq, sq_2 … sq_31 (30) (a chain: each reads another of them)"
    assert '  n2 --> n2' in orch("dag", "chain.py", "--format", "mermaid").stdout.splitlines()
    assert '"add ×30" -> "add ×30";' in orch("dag", "chain.py", "--format", "dot").stdout


def test_dag_cuts_a_long_list_of_inputs_with_a_count():
    from orchestrator.diagrams import upstream_text

    assert upstream_text([f"s{i}" for i in range(50)]) == ", ".join(f"s{i}" for i in range(10)) + ", … 40 more"
    assert upstream_text(["a", "b"]) == "a, b"


def test_p_name_close_to_a_parameter_warns_when_options_takes_it(orch, calls, project):
    """``**options`` takes any name, so ``-p alpah=2`` for ``alpha`` ran silently with the default alpha."""
    (project / "opts.py").write_text(
        "from orchestrator import pipeline, step\n"
        "@step\ndef fit(alpha: float, options: dict) -> float:\n    return alpha * len(options)\n"
        "@pipeline\ndef opts(alpha: float = 1.0, **options):\n    return fit(alpha, options)\n"
    )
    typo = orch("run", "opts.py", "-p", "alpah=2", "--json")
    assert typo.returncode == 0, typo.stderr
    assert json.loads(typo.stdout)["params"] == {"alpha": 1.0, "alpah": 2}
    assert ("warning: 'alpah' is not a parameter of pipeline 'opts': it goes into **options. "
            "Did you mean 'alpha'?\n") in typo.stderr
    meant = orch("run", "opts.py", "-p", "max_depth=3", "--json")  # far from every name: an option, said nothing
    assert meant.returncode == 0 and "warning" not in meant.stderr, meant.stderr
