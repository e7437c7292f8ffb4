"""README.md's main example, typed as a reader types it: the pipeline, every `orch` line, the Python lines;
and the whole pipelines the docs show.

The README is the first thing a user runs; a renamed function, flag or output there fails here, in a
fresh folder with its own ./cache, as it would for them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _blocks(section: str) -> list[tuple[str, str]]:
    """The fenced blocks (language, text) of one `## ` section of README.md."""
    text = (ROOT / "README.md").read_text().split(f"\n## {section}\n")[1].split("\n## ")[0]
    return re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reader")
    (folder / "data").mkdir()
    (folder / "data" / "raw.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    pipeline = [code for lang, code in _blocks("A pipeline") if lang == "python"][0]
    (folder / "training.py").write_text(pipeline)
    return folder


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(folder / "config"), "COLUMNS": "200"}


def _orch(folder: Path, line: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "orchestrator", *line.split()[1:]], cwd=folder, env=_env(folder),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, (line, result.stdout, result.stderr)
    return result


def test_every_orch_line_of_the_readme_runs_and_says_what_its_comment_says(folder: Path) -> None:
    lines = [code for lang, code in _blocks("A pipeline") if lang == "bash"][0].splitlines()
    run_id = digest = ""
    for line in lines:
        command, _, comment = line.partition("#")
        command = command.strip()
        if "|" in command:  # `orch cache ls | verify [--repair] | gc --keep-last 5`: each of them
            expanded = ["orch cache ls", "orch cache verify", "orch cache verify --repair", "orch cache gc --keep-last 5"]
        else:
            expanded = [command.replace("RUN_ID", run_id).replace("DIGEST", digest)]
        for each in expanded:
            result = _orch(folder, each)
            quoted = re.search(r'\("(.+)"\)', comment)
            if quoted:  # `("parameter `alpha` changed (0.5 → 0.1)")`: what the reader should see
                assert quoted.group(1) in result.stdout, (each, result.stdout)
        if "only fit and evaluate run again" in comment:  # as it says: the model changed, so its evaluation did
            shown = json.loads(_orch(folder, "orch show latest --json").stdout)
            assert {s["name"]: s["status"] for s in shown["steps"]} == {
                "ingest": "cached", "split": "cached", "fit": "ran", "evaluate": "ran"}, shown
        if command.startswith("orch run ") and not run_id:  # the first run; the second changes alpha
            shown = json.loads(_orch(folder, "orch show latest --json").stdout)
            run_id = shown["run_id"]
            digest = next(s for s in shown["steps"] if s["name"] == "ingest")["outputs"][0]["hash"][:12]
            assert shown["params"]["alpha"] == 0.5 and {s["status"] for s in shown["steps"]} == {"ran"}
    assert run_id and digest


def test_the_python_lines_of_the_readme_run(folder: Path) -> None:
    code = [code for lang, code in _blocks("A pipeline") if lang == "python"][1]
    assert "training.run(" in code and "fit(df" in code
    preamble = "import pandas as pd\nfrom training import training, fit\ndf = pd.read_csv('data/raw.csv')\n"
    check = "\nassert run.status == 'succeeded' and run.id and run.steps['fit'].status in ('ran', 'cached')\n"
    result = subprocess.run([sys.executable, "-c", preamble + code + check], cwd=folder, env=_env(folder),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_map_example_of_execution_md_runs_as_its_comments_say(tmp_path: Path) -> None:
    from orchestrator.loader import load_pipeline

    text = (ROOT / "docs" / "execution.md").read_text().split("## Dynamic fan-out")[1]
    code = re.search(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    assert code, "execution.md lost its step.map example"
    (tmp_path / "scoring_example.py").write_text(code.group(1))
    run = load_pipeline(str(tmp_path / "scoring_example.py")).run(store=str(tmp_path / "cache"))
    assert run.status == "succeeded" and run.output() == sum(part * 0.5 for part in range(8))
    assert [name for name in run.steps if name.startswith("score")] == ["score", *(f"score_{i}" for i in range(2, 9))]


def test_the_materializer_example_of_store_md_stores_its_type_in_its_format(tmp_path: Path) -> None:
    from orchestrator.context import Context
    from orchestrator.loader import load_pipeline

    text = (ROOT / "docs" / "store.md").read_text().split("### Your own format: a materializer")[1]
    code = re.search(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    assert code, "store.md lost its materializer example"
    pipeline = ("\nfrom orchestrator import pipeline, step\n\n@step\ndef words() -> Vocab:\n"
                "    return Vocab(['a', 'b'])\n\n@step\ndef count(vocab: Vocab) -> int:\n    return len(vocab.words)\n\n"
                "@pipeline\ndef vocab():\n    return words(), count(words())\n")
    (tmp_path / "vocab_example.py").write_text(code.group(1) + pipeline)
    try:
        run = load_pipeline(str(tmp_path / "vocab_example.py")).run(store=str(tmp_path / "cache"))
        assert run.status == "succeeded"
        loaded, count = run.output()
        assert loaded.words == ["a", "b"] and count == 2
        digest = run.steps["words"].outputs["out"]
        assert Context.open(str(tmp_path / "cache")).lineage.artifact_row(digest)["materializer"] == "vocab"
    finally:
        from orchestrator.serialize import unregister_materializer

        unregister_materializer("vocab")  # registered at import, for this process: the other tests' values
