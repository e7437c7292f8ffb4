"""What reaches a step's recorded log and what reaches the run's terminal, with descriptors 1 and 2 captured."""

from __future__ import annotations

import json
import os
import sys

from orchestrator.capture import Capture
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


def test_the_progress_bar_still_sees_a_terminal_while_a_step_runs(monkeypatch):
    # rich redraws a live display only while its console's file is a terminal.
    main, side = os.openpty()
    terminal = open(side, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        monkeypatch.setattr(sys, "stderr", terminal)
        reporter = ConsoleReporter()
        with Capture(echo=False) as captured:
            assert reporter.console.is_terminal
            reporter.console.print("redrawn")
        assert captured.stderr == ""
        assert b"redrawn" in os.read(main, 4096)
    finally:
        terminal.close()
        os.close(main)
