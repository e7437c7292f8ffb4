"""What `orch plan` says about a step before it runs."""

from __future__ import annotations

from orchestrator.loader import load_pipeline

from .conftest import PIPELINES


def test_plan_names_a_path_parameter_with_no_file_behind_it(tmp_path, calls):
    from pathlib import Path

    plan = load_pipeline(str(PIPELINES / "files.py")).plan(store=str(tmp_path / "store"),
                                                           path=Path(tmp_path / "nosuch.csv"))
    read = next(e for e in plan.entries if e.node == "read")
    assert (read.status, read.reason) == ("will run", f"file `path` does not exist ({tmp_path / 'nosuch.csv'})")


def test_plan_names_a_missing_file_once(tmp_path, calls):
    """After a run that read the file, the reason says it is gone; the note does not repeat the path."""
    from pathlib import Path

    data = tmp_path / "input.txt"
    data.write_text("hello")
    files, store = load_pipeline(str(PIPELINES / "files.py")), str(tmp_path / "store")
    files.run(store=store, path=Path(data))
    data.unlink()
    read = next(e for e in files.plan(store=store, path=Path(data)).entries if e.node == "read")
    assert (read.status, read.reason) == ("will run", f"file `path` is gone ({data})")
