"""A project's defaults in ``[tool.orchestrator]`` of its pyproject.toml: one store wherever in it a command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, orch_process

PIPELINE = '''
from pathlib import Path
from orchestrator import pipeline, step


@step
def read(path: Path) -> str:
    return path.read_text()


@step
def shout(text: str, times: int) -> str:
    return text.upper() * times


@pipeline
def proj_pipe(path: Path = Path("data/raw.txt"), times: int = 1):
    return shout(read(path), times=times)
'''


@pytest.fixture
def myproj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project laid out as Kedro/DVC users do: pyproject.toml with the table, pipelines/, data/."""
    monkeypatch.delenv("ORCH_STORE", raising=False)
    monkeypatch.delenv("ORCH_METADATA", raising=False)
    root = tmp_path / "myproj"
    (root / "pipelines").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "raw.txt").write_text("abc")
    (root / "pipelines" / "proj_pipe.py").write_text(PIPELINE)
    (root / "pyproject.toml").write_text('[project]\nname = "myproj"\n\n[tool.orchestrator]\nstore = "data/cache"\n')
    return root


def _orch(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("ORCH_STORE", "ORCH_METADATA")}
    return orch_process(list(args), cwd, {**base, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **(env or {})})


def _main(*args: str) -> int:
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return int(exited.value.code or 0)


def test_a_run_from_a_subfolder_uses_the_projects_store_and_hits_its_cache(myproj: Path):
    first = _orch(myproj, "run", "pipelines/proj_pipe.py")
    assert first.returncode == 0, first.stderr
    assert (myproj / "data" / "cache" / "metadata.db").is_file() and not (myproj / "cache").exists()
    again = _orch(myproj / "pipelines", "run", "proj_pipe.py", "-p", "path=../data/raw.txt", "--json")
    assert again.returncode == 0, again.stderr
    assert {s["status"] for s in json.loads(again.stdout)["steps"]} == {"cached"}
    assert not (myproj / "pipelines" / "cache").exists()  # no second, empty store in the subfolder
    listed = _orch(myproj / "data", "runs", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2, listed.stderr


def test_doctor_names_the_store_and_why(myproj: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(myproj)
    assert _main("run", "pipelines/proj_pipe.py") == 0
    capsys.readouterr()
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("doctor") == 0
    err = capsys.readouterr().err
    assert err.startswith(f"store {myproj / 'data' / 'cache'} (from [tool.orchestrator] in "
                          f"{myproj / 'pyproject.toml'})\n"), err
    assert _main("doctor", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == str(myproj / "data" / "cache")
    assert doc["metadata"] == str(myproj / "data" / "cache" / "metadata.db")
    assert doc["store_source"] == f"[tool.orchestrator] in {myproj / 'pyproject.toml'}"


def test_store_flag_and_environment_win_over_the_table(myproj: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(myproj)
    other = myproj.parent / "elsewhere"
    assert _main("--store", str(other), "run", "pipelines/proj_pipe.py") == 0
    assert (other / "metadata.db").is_file() and not (myproj / "data" / "cache").exists()
    capsys.readouterr()
    monkeypatch.setenv("ORCH_STORE", str(other))
    assert _main("doctor", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == str(other) and doc["store_source"] == "ORCH_STORE"
    assert _main("--store", str(other), "doctor", "--json") == 0
    assert json.loads(capsys.readouterr().out)["store_source"] == "--store"


def test_without_the_table_the_store_is_cache_in_the_current_folder(myproj: Path, monkeypatch, capsys):
    (myproj / "pyproject.toml").write_text('[project]\nname = "myproj"\n\n[tool.ruff]\nline-length = 99\n')
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("run", "proj_pipe.py", "-p", "path=../data/raw.txt") == 0
    assert (myproj / "pipelines" / "cache" / "metadata.db").is_file()
    capsys.readouterr()
    assert _main("doctor", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == str(myproj / "pipelines" / "cache") and doc["store_source"] == "the default ./cache"


def test_an_empty_table_anchors_the_default_store_at_the_project_root(myproj: Path, monkeypatch, capsys):
    (myproj / "pyproject.toml").write_text("[tool.orchestrator]\n")
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("run", "proj_pipe.py", "-p", "path=../data/raw.txt") == 0
    assert (myproj / "cache" / "metadata.db").is_file() and not (myproj / "pipelines" / "cache").exists()


def test_the_tables_metadata_goes_with_its_store_only(myproj: Path, monkeypatch, capsys):
    (myproj / "pyproject.toml").write_text('[tool.orchestrator]\nstore = "data/cache"\nmetadata = "meta"\n')
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("run", "proj_pipe.py", "-p", "path=../data/raw.txt") == 0
    assert (myproj / "meta" / "metadata.db").is_file() and not (myproj / "data" / "cache" / "metadata.db").exists()
    capsys.readouterr()
    assert _main("doctor", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["store"], doc["metadata"]) == (str(myproj / "data" / "cache"), str(myproj / "meta" / "metadata.db"))
    # An explicit store elsewhere keeps its own database, instead of being paired with the project's.
    other = myproj.parent / "elsewhere"
    assert _main("--store", str(other), "run", "proj_pipe.py", "-p", "path=../data/raw.txt") == 0
    assert (other / "metadata.db").is_file()


def test_a_pipeline_run_from_python_without_store_uses_the_table(myproj: Path, monkeypatch):
    """``pipeline.run()`` finds the store as the CLI does: a notebook in notebooks/ shares the project's cache."""
    from orchestrator import get_run
    from orchestrator.loader import load_pipeline

    monkeypatch.chdir(myproj)
    pipe = load_pipeline(str(myproj / "pipelines" / "proj_pipe.py"))
    first = pipe.run()
    (myproj / "notebooks").mkdir()
    monkeypatch.chdir(myproj / "notebooks")
    again = pipe.run(path=Path("../data/raw.txt"))
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert get_run("latest").id == again.id and first.output() == again.output() == "ABC"


def test_paths_in_a_project_are_keyed_relative_to_its_root(myproj: Path, monkeypatch):
    """The same file named from `notebooks/` (`../data/raw.txt`) is the key of `data/raw.txt` from the root;
    a copy of it at another path of the project is another input, whose step runs."""
    from orchestrator.loader import load_pipeline

    monkeypatch.chdir(myproj)
    pipe = load_pipeline(str(myproj / "pipelines" / "proj_pipe.py"))
    first = pipe.run()
    (myproj / "notebooks").mkdir()
    monkeypatch.chdir(myproj / "notebooks")
    assert pipe.run(path=(myproj / "data" / "raw.txt")).steps["read"].key == first.steps["read"].key
    (myproj / "data" / "copy.txt").write_text("abc")
    copy = pipe.run(path=Path("../data/copy.txt"))
    assert (copy.steps["read"].status, copy.steps["shout"].status) == ("ran", "cached")
    assert copy.steps["read"].reason == f"parameter `path` changed (now {myproj / 'data' / 'copy.txt'})"

@pytest.mark.parametrize(("table", "expected"), [
    ('[tool.orchestrator]\nstor = "x"\n', "unknown key 'stor' in [tool.orchestrator] of {file}. Did you mean 'store'?"),
    ('[tool.orchestrator]\nstore = 3\n', "'store' in [tool.orchestrator] of {file} must be a non-empty string"),
    ('[tool.orchestrator]\nstore = "s3:/bucket/x"\n', "looks like a URL missing its '//'"),
    ('[tool.orchestrator\nstore = "x"\n', "cannot read [tool.orchestrator] in {file}: it is not valid TOML"),
    ('[tool.orchestrater]\nstore = "x"\n', "[tool.orchestrater] in {file}: did you mean [tool.orchestrator]?"),
    # beside a right one, its keys (a `metadata` folder) were left out without a word
    ('[tool.orchestrator]\nstore = "x"\n[tool.orchestrater]\nmetadata = "m"\n',
     "[tool.orchestrater] in {file}, beside [tool.orchestrator]: a misspelled table, whose keys would be left out."),
])
def test_a_mistake_in_the_table_is_one_line_and_exit_2(myproj: Path, monkeypatch, capsys, table, expected):
    file = myproj / "pyproject.toml"
    file.write_text(table)
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("runs") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected.format(file=file) in err, err


def test_a_broken_pyproject_that_does_not_configure_us_is_passed_over(myproj: Path, monkeypatch, capsys):
    (myproj / "pipelines" / "pyproject.toml").write_text("[project\nname = broken\n")
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("run", "proj_pipe.py", "-p", "path=../data/raw.txt") == 0
    assert (myproj / "data" / "cache" / "metadata.db").is_file()


def test_a_missing_store_names_the_table_that_chose_it(myproj: Path, monkeypatch, capsys):
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("runs") == 2
    err = capsys.readouterr().err
    assert (f"no store at {myproj / 'data' / 'cache'} (from [tool.orchestrator] in {myproj / 'pyproject.toml'})"
            in err), err


def test_a_default_path_found_at_the_project_root_is_warned_about(myproj: Path, monkeypatch, capsys):
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("run", "proj_pipe.py") == 1  # data/raw.txt is not in pipelines/: the step fails
    err = capsys.readouterr().err
    assert ("warning: parameter 'path' is data/raw.txt, which is not in the current folder "
            f"{myproj / 'pipelines'} but is at the project root (pyproject.toml): run from .., or pass "
            "-p path=../data/raw.txt") in err, err


def test_one_params_file_serves_several_pipelines_by_their_tables(myproj: Path, monkeypatch, capsys):
    """``[proj_pipe]`` holds this pipeline's values, over the shared top level; -p wins over both."""
    (myproj / "conf").mkdir()
    (myproj / "conf" / "base.toml").write_text(
        'path = "data/raw.txt"\nseed = 7\n\n[proj_pipe]\ntimes = 2\n\n[scoring]\nthreshold = 0.3\n')
    monkeypatch.chdir(myproj)
    assert _main("run", "pipelines/proj_pipe.py", "--params", "conf/base.toml", "--json") == 0
    run = json.loads(capsys.readouterr().out)
    assert run["params"] == {"path": "data/raw.txt", "times": 2}
    assert _main("run", "pipelines/proj_pipe.py", "--params", "conf/base.toml", "-p", "times=3", "--json") == 0
    assert json.loads(capsys.readouterr().out)["params"]["times"] == 3
    (myproj / "conf" / "base.toml").write_text("[proj_pipe]\ntims = 2\n")  # its own table is checked key by key
    assert _main("run", "pipelines/proj_pipe.py", "--params", "conf/base.toml") == 2
    assert "pipeline 'proj_pipe' has no parameter 'tims' in conf/base.toml. Did you mean 'times'?" in \
        capsys.readouterr().err


def test_params_files_are_layered_a_later_one_winning_key_by_key(myproj: Path, monkeypatch, capsys):
    """``--params conf/base.toml --params conf/local.toml``: the first file's other values are kept, not dropped."""
    (myproj / "conf").mkdir()
    (myproj / "conf" / "base.toml").write_text('path = "data/other.txt"\ntimes = 2\n')
    (myproj / "conf" / "local.toml").write_text('path = "data/raw.txt"\n')
    monkeypatch.chdir(myproj)
    assert _main("run", "pipelines/proj_pipe.py", "--params", "conf/base.toml", "--params", "conf/local.toml",
                 "--json") == 0
    assert json.loads(capsys.readouterr().out)["params"] == {"path": "data/raw.txt", "times": 2}
    (myproj / "conf" / "local.toml").write_text('times = "3"\n')
    assert _main("plan", "pipelines/proj_pipe.py", "--params", "conf/base.toml", "--params", "conf/local.toml") == 2
    err = capsys.readouterr().err
    assert "parameter 'times' in conf/local.toml: expected an integer" in err, err
    (myproj / "conf" / "local.toml").write_text("tims = 3\n")  # a misspelt name: which of the files has it
    assert _main("plan", "pipelines/proj_pipe.py", "--params", "conf/base.toml", "--params", "conf/local.toml") == 2
    err = capsys.readouterr().err
    assert "pipeline 'proj_pipe' has no parameter 'tims' in conf/local.toml. Did you mean 'times'?" in err, err
    assert _main("plan", "pipelines/proj_pipe.py", "--params", "conf/base.toml", "-p", "tims=3") == 2
    assert "has no parameter 'tims'. Did you mean 'times'?" in capsys.readouterr().err  # -p: no file to name


def test_a_src_package_not_installed_is_named_with_the_install_command(myproj: Path, monkeypatch, capsys):
    """``from myproj.features import x`` in pipelines/, the project never installed: say where it is and what to run."""
    (myproj / "src" / "myproj_uninstalled").mkdir(parents=True)
    (myproj / "src" / "myproj_uninstalled" / "__init__.py").write_text("")
    (myproj / "pipelines" / "uses_src.py").write_text("import myproj_uninstalled.features\n" + PIPELINE)
    monkeypatch.chdir(myproj / "pipelines")
    assert _main("run", "uses_src.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("No module named 'myproj_uninstalled'. 'myproj_uninstalled' is in "
                                     f"{myproj / 'src'}, which this Python ({sys.executable}) does not import "
                                     f"from: pip install -e {myproj}, with the Python that runs orch") in err, err
    (myproj / "pipelines" / "other.py").write_text("import not_in_this_project\n" + PIPELINE)
    assert _main("run", "other.py") == 2
    assert "No module named 'not_in_this_project' (run with --verbose" in capsys.readouterr().err


def test_a_missing_project_store_points_at_the_former_cache_here(myproj: Path, monkeypatch, capsys):
    """Runs made before the table was added live in ./cache: say so, not only that the project's store is missing."""
    monkeypatch.chdir(myproj)
    assert _main("--store", "cache", "run", "pipelines/proj_pipe.py") == 0
    capsys.readouterr()
    assert _main("runs") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("./cache here is a store too (the default before the table): read it with "
                                     f"--store cache, or move it to {myproj / 'data' / 'cache'}") in err, err


def test_a_run_that_starts_the_projects_store_names_the_former_cache_here(myproj: Path, monkeypatch, capsys):
    """Adding the table must not silently start an empty store beside the earlier runs in ./cache."""
    import shutil

    from orchestrator.loader import load_pipeline

    monkeypatch.chdir(myproj)
    assert _main("--store", "cache", "run", "pipelines/proj_pipe.py") == 0
    capsys.readouterr()
    assert _main("run", "pipelines/proj_pipe.py") == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: this run starts a new, empty store at "
                          f"{myproj / 'data' / 'cache'} (from [tool.orchestrator] in {myproj / 'pyproject.toml'}), "
                          "but ./cache here holds the runs made before the table: to keep using it, run with "
                          "orch --store cache run ..."), err
    assert f"or move it to {myproj / 'data' / 'cache'}" in err.splitlines()[0]
    assert _main("run", "pipelines/proj_pipe.py") == 0  # the project's store is in use now: said once
    assert "warning" not in capsys.readouterr().err
    # From Python, as a warning at the user's line.
    shutil.rmtree(myproj / "data" / "cache")
    with pytest.warns(UserWarning, match=r"new, empty store .* to keep using it, run with store='cache'"):
        load_pipeline(str(myproj / "pipelines" / "proj_pipe.py")).run()


def test_a_run_from_outside_the_project_says_the_path_is_keyed_otherwise_not_that_its_file_changed(myproj: Path):
    """From the project's parent folder its file is keyed as `myproj/data/raw.txt`: the step runs, and said
    "content of file `path` changed" of a file nobody touched."""
    (myproj / "pipelines" / "abs_pipe.py").write_text(
        "from pathlib import Path\nfrom orchestrator import pipeline, step\n\n@step\ndef load(path: Path) -> str:\n"
        "    return path.read_text()\n\n@pipeline\n"
        "def abs_pipe(path: Path = Path(__file__).parent.parent / 'data' / 'raw.txt'):\n    return load(path)\n")
    assert _orch(myproj, "run", "pipelines/abs_pipe.py").returncode == 0
    planned = _orch(myproj.parent, "--store", "myproj/data/cache", "plan", "myproj/pipelines/abs_pipe.py")
    assert planned.returncode == 0, planned.stderr
    assert "parameter `path` changed (its file's path as keyed, not its content: " in planned.stdout, planned.stdout
    assert "content of file" not in planned.stdout
