"""What reaches a step's recorded log and what reaches the run's terminal, with descriptors 1 and 2 captured."""

from __future__ import annotations

import json

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
