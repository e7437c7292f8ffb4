"""What reaches a step's recorded log and what reaches the run's terminal, with descriptors 1 and 2 captured."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator

import pytest

from orchestrator import pipeline, step
from orchestrator.capture import Capture
from orchestrator.fd_capture import descriptors_held
from orchestrator.report import ConsoleReporter
from tests.conftest import Orch


def _attempt(orch: Orch, step: str) -> dict:
    shown = orch("logs", f"latest:{step}", "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["attempts"][-1]


def test_json_with_verbose_keeps_a_steps_stdout_once(orch):
    # `--json` points sys.stdout at the terminal's stderr, so that the document stays alone on stdout;
    # echoing the step's stdout there wrote it onto descriptor 2, into the step's captured stderr too.
    done = orch("run", "chatty.py", "--json", "--verbose")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert "talking about 1" in done.stderr  # --verbose: shown live, off the JSON document
    attempt = _attempt(orch, "talk")
    assert attempt["stdout"] == "talking about 1\n"
    assert attempt["stderr"] == ""


def test_the_progress_display_writes_to_the_terminal_while_a_step_runs(capfd):
    # rich looked sys.stderr up at each write and found the step's capture: the bar stopped redrawing
    # while a step ran, and what it wrote then was kept as the step's stderr.
    reporter = ConsoleReporter()
    with Capture(echo=False) as captured:
        reporter.console.print("progress line")
        print("the step's own", file=sys.stderr)
    assert captured.stderr == "the step's own\n"
    assert "progress line" in capfd.readouterr().err


@contextlib.contextmanager
def _terminal_on_stderr() -> Iterator[int]:
    """Descriptor 2 and ``sys.stderr`` on a pseudo-terminal, as in a shell; yields its reading end.

    Made in the test's body: pytest points both at its own capture again as each phase begins.
    """
    main, side = os.openpty()
    saved, stream = os.dup(2), sys.stderr
    os.dup2(side, 2)
    os.close(side)
    try:
        with open(2, "w", encoding="utf-8", closefd=False) as sys.stderr:
            yield main
    finally:
        sys.stderr = stream
        os.dup2(saved, 2)
        os.close(saved)
        os.close(main)


@pytest.mark.parametrize("held", [False, True])
def test_the_progress_bar_still_sees_a_terminal_while_a_step_runs(held):
    # rich redraws a live display only while its console's file is a terminal: during a step
    # descriptor 2 points at the capture's pipe, so the terminal is its saved copy.
    with _terminal_on_stderr() as terminal:
        reporter = ConsoleReporter()
        with descriptors_held() if held else contextlib.nullcontext(), Capture(echo=False) as captured:
            is_terminal = reporter.console.is_terminal
            reporter.console.print("redrawn")
        shown = os.read(terminal, 4096)
    assert is_terminal
    assert captured.stderr == ""
    assert b"redrawn" in shown


_WRITERS = ("printed by step", "written to fd 1 by step", "written to fd 2 by step", "from a subprocess of step")


@pytest.mark.parametrize("verbose", [False, True])
def test_what_a_step_writes_is_its_own_and_on_the_terminal_only_with_verbose(orch, verbose):
    done = orch("run", "descriptors.py:descriptors", *(["--verbose"] if verbose else []))
    assert done.returncode == 0, done.stderr
    terminal = done.stdout + done.stderr
    assert "succeeded (2 ran)" in done.stderr  # the run's own output reaches the terminal
    for x, node in ((1, "writes"), (2, "writes_2")):
        attempt = _attempt(orch, node)
        assert attempt["stdout"].splitlines() == [f"printed by step {x}", f"written to fd 1 by step {x}",
                                                  f"from a subprocess of step {x}"]
        assert attempt["stderr"] == f"written to fd 2 by step {x}\n"
        for text in _WRITERS:
            assert (f"{text} {x}" in terminal) is verbose


def test_a_step_that_closes_descriptor_1_leaves_the_run_and_the_next_steps_whole(orch):
    done = orch("run", "descriptors.py:closing")
    assert done.returncode == 0, done.stderr
    assert "succeeded (3 ran)" in done.stderr
    attempt = _attempt(orch, "writes_2")
    assert "written to fd 1 by step 3" in attempt["stdout"]
    assert "from a subprocess of step 3" in attempt["stdout"]
    assert "step 3" not in done.stdout + done.stderr


def _same_file(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


@pytest.mark.parametrize("ending", [ValueError, KeyboardInterrupt])
def test_descriptors_1_and_2_are_put_back_when_a_run_fails_or_is_interrupted(store, ending):
    @step(cache=False)
    def prints(x: int) -> int:
        os.write(1, b"before the end\n")
        return x + 1

    @step(cache=False)
    def ends(x: int) -> int:
        raise ending("the end")

    @pipeline
    def ended(x: int = 1):
        return ends(prints(x))

    before = {fd: os.fstat(fd) for fd in (1, 2)}
    streams = (sys.stdout, sys.stderr)
    if ending is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            ended.run(store=str(store))
    else:
        assert ended.run(store=str(store)).status == "failed"
    assert all(_same_file(before[fd], os.fstat(fd)) for fd in (1, 2))
    assert (sys.stdout, sys.stderr) == streams


def test_a_run_started_inside_a_step_keeps_its_own_steps_writes(store, tmp_path):
    # The outer run holds descriptors 1 and 2; the run inside its step captures per attempt within that.
    from orchestrator.lineage_db import Lineage

    @step(cache=False)
    def inner_writes(x: int) -> int:
        os.write(1, b"from the inner step\n")
        return x + 1

    @pipeline
    def inner(x: int = 1):
        return inner_writes(x)

    @step(cache=False)
    def outer_runs(x: int, inner_store: str) -> str:
        os.write(1, b"from the outer step, before\n")
        run_id = inner.run(store=inner_store, x=x).id
        os.write(1, b"from the outer step, after\n")
        return run_id

    @pipeline
    def outer(inner_store: str, x: int = 1):
        return outer_runs(x, inner_store)

    before = {fd: os.fstat(fd) for fd in (1, 2)}
    done = outer.run(store=str(store), inner_store=str(tmp_path / "inner"))
    assert done.status == "succeeded"
    assert all(_same_file(before[fd], os.fstat(fd)) for fd in (1, 2))
    outer_out = Lineage(store / "metadata.db").attempts(done.id, "outer_runs")[0]["stdout"]
    assert outer_out == "from the outer step, before\nfrom the outer step, after\n"
    inner_run = done.output()
    inner_out = Lineage(tmp_path / "inner" / "metadata.db").attempts(inner_run, "inner_writes")[0]["stdout"]
    assert inner_out == "from the inner step\n"
