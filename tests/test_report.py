"""The run summary: one row per step call, and text from user code is never read as rich markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from orchestrator.report import FOLD_ABOVE, fold_rows, one_line, status_text, styled, summary_table
from orchestrator.results import StepResult


def _render(renderable, width: int = 200) -> str:
    out = io.StringIO()
    Console(file=out, width=width, highlight=False).print(renderable)
    return out.getvalue()


def test_summary_leaves_out_map_nodes_and_survives_any_status_or_text():
    results = {
        "items": StepResult("items", "ran", "no earlier result", 1, 0.001),
        "square.map": StepResult("square.map", "map"),
        "odd": StepResult("odd", "unheard-of", "[/] closes nothing [bold]", 1),
        "bad": StepResult("bad", "failed", error="KeyError: '[/tmp/x]'", attempts=2),
    }
    text = _render(summary_table(results))
    assert "square.map" not in text and "map " not in text
    assert "unheard-of" in text and "[/] closes nothing [bold]" in text and "KeyError: '[/tmp/x]'" in text


def test_status_without_a_style_is_plain():
    assert _render(status_text("map")).strip() == "map"
    assert _render(styled("map")).strip() == "map" and _render(styled("ran")).strip() == "ran"


def test_one_line_cuts_long_and_multi_line_values():
    assert one_line("short") == "short"
    assert one_line("a\nb") == "a\\nb"
    cut = one_line("x" * 1000)
    assert len(cut) == 200 and cut.endswith("…")


def test_a_big_summary_folds_alike_calls_of_one_step_but_never_a_failure():
    results = {"items": StepResult("items", "ran", "no earlier result", 1, 0.5)}
    for i in range(1, 61):
        name = "square" if i == 1 else f"square_{i}"
        status, why = ("failed", None) if i == 30 else ("cached", "cached") if i % 2 else ("ran", "no earlier result")
        results[name] = StepResult(name, status, why or "", 1 if status != "cached" else 0, 0.25,
                                   error="ValueError: bad item" if status == "failed" else None)
    results["total"] = StepResult("total", "skipped", "input from step 'square_30', which failed")
    lines = _render(summary_table(results, run_id="abc123")).splitlines()
    assert [line.split("  ")[0].strip() for line in lines[1:6]] == [
        "items", "square … square_59 (30)", "square_2 … square_60 (29)", "square_30", "total"]
    assert lines[3].split()[4:8] == ["ran", "29", "7.2", "s"]  # attempts and time add up
    assert "ValueError: bad item" in lines[4]
    assert lines[6].rstrip() == "62 steps in 5 rows (alike calls of one step share a row; orch show abc123 lists each)"
    narrow = {name: StepResult(name, "ran", "x", 1, 0.1) for name in ["a"] + [f"a_{i}" for i in range(2, 53)]}
    assert _render(summary_table(narrow, run_id="c23fc7081100")).splitlines()[-1] == (
        "52 steps in 1 row (alike calls of one step share a row; orch show c23fc7081100 lists each)")  # one line
    few = {k: results[k] for k in list(results)[:FOLD_ABOVE]}
    assert len(_render(summary_table(few)).splitlines()) == FOLD_ABOVE + 1  # a header, then one row each


def test_fold_rows_tells_the_nodes_a_reason_names_apart_only_by_step():
    rows = [(f"fit_{i}", "may run", f"input from step 'load_{i}', which will run") for i in range(2, 50)]
    rows.append(("fit", "may run", "input from step 'clean', which will run"))
    assert [len(g) for g in fold_rows(rows)] == [48, 1]


def test_progress_of_a_long_map_counts_its_steps_in_linear_time(store, monkeypatch, capsys):
    # The reporter counted every node of the DAG at each step's start and end: a map of N items
    # made N² checks, minutes at 20,000 items. Count the checks rather than time them.
    from orchestrator import pipeline, step
    from orchestrator.dag import Node
    from orchestrator.report import ConsoleReporter

    @step
    def items(n: int) -> list:
        return list(range(n))

    @step
    def double(x: int) -> int:
        return 2 * x

    @pipeline
    def doubles(n: int = 400):
        return double.map(items(n))

    checks = [0]
    is_map = Node.is_map

    def counted(node):
        checks[0] += 1
        return is_map.fget(node)

    monkeypatch.setattr(Node, "is_map", property(counted))
    run = doubles.run(store=str(store), progress=ConsoleReporter())
    assert run.status == "succeeded" and len(run.steps) == 401
    assert checks[0] < 30 * 400, checks[0]
    assert "401/401" in capsys.readouterr().err  # the count itself is still right


def test_a_big_summary_folds_calls_whose_reasons_differ_only_by_their_values():
    # A grid search whose every config changed: each item's reason names its own values.
    results = {}
    for i in range(1, 61):
        name = "fit" if i == 1 else f"fit_{i}"
        why = "no earlier result" if i > 50 else f'parameter `cfg` changed ({{"lr": {i}}} → {{"lr": {i + 1}}})'
        results[name] = StepResult(name, "ran", why, 1, 0.1)
    results["best"] = StepResult("best", "ran", "input `results` changed", 1, 0.1)
    lines = _render(summary_table(results)).splitlines()
    rows = [line.split("  ")[0].strip() for line in lines[1:4]]
    assert rows == ["fit … fit_50 (50)", "fit_51 … fit_60 (10)", "best"]
    assert lines[1].rstrip().endswith("parameter `cfg` changed (differs per call)")
    assert lines[2].rstrip().endswith("no earlier result")
    same = {f"f_{i}": StepResult(f"f_{i}", "ran", "caching turned off for this run (--no-cache)", 1)
            for i in range(2, 60)}
    assert _render(summary_table(same)).splitlines()[1].rstrip().endswith(
        "caching turned off for this run (--no-cache)")  # one reason for all: shown whole


def test_a_chain_folded_into_one_row_says_row():
    from orchestrator.report import fold_note

    assert fold_note(2000, 1, "orch show abc123 lists each") == \
        "2000 steps in 1 row (alike calls of one step share a row; orch show abc123 lists each)"
    assert fold_note(62, 5, "x").startswith("62 steps in 5 rows (")


def test_a_folded_chain_names_the_range_of_steps_its_links_wait_for():
    from orchestrator.report import folded_reason

    reasons = [f"input from step 'inc_{i - 1}', which may run" for i in range(3, 2001)]
    assert folded_reason(reasons) == "input from step 'inc_2 … inc_1999', which may run"
    alike = ["input from step 'items', which may run"] * 3
    assert folded_reason(alike) == alike[0]
    assert folded_reason(["input from step 'load_7' changed"] * 2) == "input from step 'load_7' changed"
    # Items skipped by three unrelated failures: named one by one, not a range that reads as 38 failures.
    skipped = [f"upstream step 'train_{i}' failed" for i in (4, 4, 21, 41)]
    assert folded_reason(skipped) == "upstream step 'train_4', 'train_21', 'train_41' failed"
    many = [f"upstream step 'train_{i}' failed" for i in range(4, 100, 10)]
    assert folded_reason(many) == "upstream step 'train_4', 'train_14', 'train_24', 'train_34' … (10 steps) failed"


def test_long_step_names_in_a_narrow_terminal_keep_their_ends_status_and_reason():
    """A piped run (80 columns): the calls stay told apart, and status and reason stay whole words."""
    name = "compute_customer_lifetime_value_features_for_segment"
    results = {n: StepResult(n, "cached" if n.endswith("_2") else "ran", "no earlier result", 1, 0.001)
               for n in (name, f"{name}_2", f"{name}_3")}
    lines = _render(summary_table(results, width=80), width=80).splitlines()[1:]
    assert [line.split()[0][-10:] for line in lines] == ["or_segment", "_segment_2", "_segment_3"]
    assert [line.split()[1] for line in lines] == ["ran", "cached", "ran"]
    assert all(line.rstrip().endswith("no earlier result") for line in lines)


def test_a_run_stopped_before_its_first_step_says_so_without_an_empty_table(capsys):
    """Ctrl-C while the first steps waited for a pool worker: the summary was a table's header alone and
    `run 1cf6db052bf9 interrupted ()`."""
    from orchestrator.report import ConsoleReporter

    ConsoleReporter().run_finished("1cf6db052bf9", "interrupted", {})
    err = capsys.readouterr().err
    assert "run 1cf6db052bf9 interrupted (no step started)" in err
    assert "attempts" not in err


LONG_ERROR = ("ValueError: the column 'customer_lifetime_value' has 1234 missing values out of 50000 rows after "
              "the join with the accounts table; check the join keys account_id and region_code, which differ "
              "in case between the two sources\n  second line of the error\n  third line")


def _failing_run(tmp_path, live: bool, monkeypatch) -> tuple[str, str]:
    """(stderr of a run whose step fails with LONG_ERROR, the run's error) through the CLI's reporter."""
    from orchestrator import pipeline, step
    from orchestrator.report import ConsoleReporter

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TTY_INTERACTIVE", "1" if live else "0")

    def explode(x):
        raise ValueError(LONG_ERROR.split(": ", 1)[1])

    load = step(name="load")(lambda: 3)
    boom = step(name="boom")(explode)
    run = pipeline(name="longfail")(lambda: boom(load())).run(store=str(tmp_path / "s"), progress=ConsoleReporter())
    assert run.status == "failed"
    return run.error or "", run.steps["boom"].error or ""


@pytest.mark.parametrize("live", [True, False], ids=["terminal", "piped"])
def test_a_long_error_is_one_clipped_row_of_the_summary(tmp_path, live, monkeypatch, capsys):
    """A failed step's long error wrapped over five lines of the why column, then came again on `error:`."""
    _, error = _failing_run(tmp_path, live, monkeypatch)
    err = capsys.readouterr().err
    lines = err.splitlines()
    header = next(i for i, line in enumerate(lines) if "step  status  attempts" in line)
    row = lines[header + 2]
    assert row.startswith("boom ") and row.rstrip().endswith("…") and len(row) <= 100
    assert "ValueError: the column 'customer_lifetime_value'" in row
    assert lines[header + 3].startswith("run ") and " failed " in lines[header + 3]
    assert "second line of the error" not in row
    if live:  # the line said as the step failed is one line too: the error is in full under the summary
        failed = [line for line in lines[:header] if "✗ boom" in line]
        assert len(failed) == 1 and failed[0].rstrip().endswith("…") and len(failed[0]) <= 100
    assert error.startswith("ValueError: the column") and "region_code" in error


def test_an_error_of_several_lines_shows_its_first_and_says_there_is_more():
    results = {"boom": StepResult("boom", "failed", error="MemoryError\nwhat to do: less data at a time", attempts=1)}
    row = _render(summary_table(results, width=80), width=80).splitlines()[1]
    assert row.rstrip().endswith("MemoryError …") and "what to do" not in row


def test_a_logged_step_line_counts_its_time_from_when_its_worker_began(capsys):
    """On the process pool the line said `ran partitions (1/2, 833 ms)` where the summary said 7 ms: it
    counted the wait for a worker to start. The run loop says when the attempt began (`step_began`)."""
    import time

    from orchestrator.report import ConsoleReporter

    reporter = ConsoleReporter()  # stderr is no terminal here: one line per step, with its time
    reporter.step_started("quick", "no earlier result")
    time.sleep(0.4)  # the pool's worker starting
    reporter.step_began("quick", time.time())
    reporter.step_finished("quick", "ran", "no earlier result")
    line = next(line for line in capsys.readouterr().err.splitlines() if "ran quick" in line)
    took = line.rsplit(", ", 1)[1].rstrip(")")
    assert took.endswith(" ms") and float(took.split()[0]) < 300, line


def test_a_logged_failure_line_keeps_to_the_start_of_a_huge_error(capsys):
    """`raise ValueError("x" * 5_000_000)` wrote one 5 MB progress line; the summary and error line are clipped."""
    from orchestrator.report import DETAIL_LIMIT, ConsoleReporter

    reporter = ConsoleReporter()
    reporter.step_started("huge", "no earlier result")
    reporter.step_finished("huge", "failed", "ValueError: " + "x" * 5_000_000)
    line = next(line for line in capsys.readouterr().err.splitlines() if "failed huge" in line)
    assert line.startswith("  failed huge: ValueError: xxx")
    assert len(line) < DETAIL_LIMIT + 60 and "…" in line
