"""Paths a step reaches outside its parameters: warned about, never hashed (no stale hit goes unsaid)."""

from __future__ import annotations

import dataclasses
import json
import textwrap
import warnings
from pathlib import Path

import pytest

from orchestrator import UntrackedPathWarning, pipeline, step
from orchestrator.errors import UserError
from orchestrator.fingerprint import fingerprint

DATA = Path("untracked-data.csv")
FILES = {"train": Path("train.csv"), "test": Path("test.csv")}
THRESHOLD = 3


@step
def read_constant() -> str:
    return DATA.read_text()


@step(untracked="DATA")
def read_opted_out() -> str:
    return DATA.read_text()


@step
def read_parameter(data: Path = DATA) -> str:
    return data.read_text()


@step
def uses_number(x: int) -> int:
    return x + THRESHOLD


def _helper(path: Path = DATA) -> str:
    return path.read_text()


@step
def via_helper_default() -> str:
    return _helper()


@step
def reads_dict() -> list[str]:
    return sorted(FILES)


class Locations:
    TRAIN = Path("train.csv")


@dataclasses.dataclass
class Config:
    data: Path = Path("config-default.csv")


class Trainer:
    LOOKUP = Path("lookup.csv")
    OTHER = Path("never-read.csv")

    @step
    def fit(self) -> str:
        return self.LOOKUP.read_text()


@step
def reads_class_attribute() -> str:
    return Locations.TRAIN.read_text()


@step
def checks_config(cfg: Config) -> str:
    assert isinstance(cfg, Config)
    return cfg.data.read_text()


def test_class_attributes_holding_paths_are_named():
    """Read through the class's name or through `self` by a step of a class body; a dataclass default is not."""
    assert fingerprint(reads_class_attribute).paths == (("class attribute", "Locations.TRAIN", "train.csv"),)
    assert fingerprint(Trainer.fit).paths == (("class attribute", "Trainer.LOOKUP", "lookup.csv"),)
    assert fingerprint(checks_config).paths == ()


def test_fingerprint_names_the_paths_code_reaches_and_keeps_the_digest():
    """What is found is listed beside the digest, not in it: keys stay as they were."""
    code = fingerprint(read_constant)
    assert code.paths == (("module constant", "DATA", "untracked-data.csv"),)
    assert fingerprint(via_helper_default).paths == (("default value", "_helper.path", "untracked-data.csv"),)
    assert fingerprint(reads_dict).paths == (("module constant", "FILES", "train.csv, …"),)
    assert fingerprint(uses_number).paths == ()
    assert fingerprint(read_parameter).paths == ()  # the step's own default is a parameter: counted by content
    assert fingerprint(read_opted_out).digest == code.digest  # untracked= is not in the key


def test_a_python_run_warns_once_per_step_and_a_stale_hit_is_said(tmp_path, store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    DATA.write_text("a\n")

    @pipeline
    def stale():
        return read_constant(), read_constant(), read_opted_out()

    with pytest.warns(UntrackedPathWarning) as caught:
        assert stale.run(store=str(store)).output()[0] == "a\n"
    messages = [str(w.message) for w in caught if w.category is UntrackedPathWarning]
    # Two calls of one step, one warning; the step that opted out is not named.
    assert messages == [
        "step 'read_constant' uses module constant `DATA` = untracked-data.csv: a path counts by its file's "
        "content only as a step parameter, so editing untracked-data.csv leaves 'read_constant' cached. "
        "Pass it as one (`data: Path = DATA`), or add @step(untracked=\"DATA\") if 'read_constant' does not "
        "read it."]
    assert caught[0].filename == __file__  # points at the user's call, not into the package
    DATA.write_text("b\n")
    with pytest.warns(UntrackedPathWarning):
        assert stale.run(store=str(store)).steps["read_constant"].status == "cached"  # the stale hit it warns of


def test_an_ordinary_pipeline_warns_of_nothing(tmp_path, store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    DATA.write_text("a\n")

    @pipeline
    def ordinary(data: Path = DATA):
        return read_parameter(data), uses_number(2), read_opted_out()

    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrackedPathWarning)
        assert ordinary.run(store=str(store)).status == "succeeded"
        assert ordinary.plan(store=str(store)).warnings == []
    DATA.write_text("b\n")
    assert ordinary.run(store=str(store)).steps["read_parameter"].reason == \
        f"content of file `data` changed ({tmp_path / DATA})"


def test_a_plan_lists_the_warnings(tmp_path, store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    DATA.write_text("a\n")

    @pipeline
    def stale():
        return read_constant(), via_helper_default()

    plan = stale.plan(store=str(store))
    assert [w.split(" uses ")[0] for w in plan.warnings] == ["step 'read_constant'", "step 'via_helper_default'"]
    assert "default value `_helper.path` = untracked-data.csv" in plan.warnings[1]
    assert "warning: step 'read_constant' uses module constant `DATA`" in repr(plan)


@pytest.mark.parametrize("value", [5, [1], ("OUT", 2)])
def test_untracked_takes_names_only(value):
    with pytest.raises(UserError, match="untracked must name path constants"):
        step(untracked=value)(lambda: None)


_WRITER = '''
from pathlib import Path
from orchestrator import pipeline, step

OUT = Path("outputs")
LOOKUP = Path("lookup.csv")


@step{options}
def export(n: int) -> int:
    OUT.mkdir(exist_ok=True)
    with open(OUT / "log.txt", "a") as log:  # appended to on every run
        log.write(LOOKUP.read_text())
    return n


@pipeline
def writer(n: int = 2):
    return export.map([n, n + 1])
'''


def _write_pipeline(folder: Path, options: str = "") -> None:
    (folder / "writer.py").write_text(textwrap.dedent(_WRITER.format(options=options)))
    (folder / "lookup.csv").write_text("k,v\n")


def test_cli_warns_once_per_step_and_a_written_folder_never_reruns(orch, project):
    """`orch run` and `orch plan` say it on stderr; a folder the step writes leaves it cached."""
    _write_pipeline(project)
    first = orch("run", "writer.py")
    assert first.returncode == 0, first.stderr
    warned = [line for line in first.stderr.splitlines() if line.startswith("warning:")]
    assert [line.split(" = ")[0] for line in warned] == [
        "warning: step 'export' uses module constant `LOOKUP`", "warning: step 'export' uses module constant `OUT`"]
    second = orch("run", "writer.py", "--json")
    assert second.returncode == 0, second.stderr
    assert {s["status"] for s in json.loads(second.stdout)["steps"]} == {"cached"}
    plan = orch("plan", "writer.py", "--json")
    assert plan.returncode == 0, plan.stderr
    assert [w.split(" = ")[0] for w in json.loads(plan.stdout)["warnings"]] == [
        "step 'export' uses module constant `LOOKUP`", "step 'export' uses module constant `OUT`"]
    assert plan.stderr.count("warning: step 'export' uses module constant `OUT`") == 1


def test_cli_says_nothing_for_names_the_user_marked_untracked(orch, project):
    _write_pipeline(project, '(untracked=["OUT", "LOOKUP"])')
    for command in ("run", "plan"):
        result = orch(command, "writer.py")
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr


@step
def also_reads_constant() -> int:
    return len(DATA.read_text())


def test_a_constant_several_steps_use_is_one_line_naming_them(tmp_path, store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    DATA.write_text("a\n")

    @pipeline
    def shared():
        return read_constant(), also_reads_constant(), read_opted_out()

    assert shared.plan(store=str(store)).warnings == [
        "steps 'read_constant' and 'also_reads_constant' use module constant `DATA` = untracked-data.csv: a path "
        "counts by its file's content only as a step parameter, so editing untracked-data.csv leaves them cached. "
        "Pass it as one (`data: Path = DATA`), or add @step(untracked=\"DATA\") to those that do not read it."]


def _load(path: Path, sep: str = ",") -> str:
    return path.read_text()


def _make_step(path: Path):
    @step
    def inner() -> str:
        return path.read_text()
    return inner


def test_a_partial_step_and_a_closure_name_their_paths():
    """Bound into the step, not passed to it: named by the parameter it is bound to, or the variable."""
    import functools

    bound = step(functools.partial(_load, Path("a.csv"), sep=";"), name="load_a")
    assert fingerprint(bound).paths == (("argument bound by functools.partial", "_load.path", "a.csv"),)
    assert fingerprint(_make_step(Path("b.csv"))).paths == (("closure variable", "path", "b.csv"),)


def test_text_a_step_annotates_as_paths_counts_by_content_and_other_text_is_named(tmp_path, store, monkeypatch):
    """Kedro's habit: a catalog of file names as text (from --params, or a dict in a notebook)."""
    from orchestrator.loader import load_pipeline

    monkeypatch.chdir(tmp_path)
    for name in ("a.csv", "b.csv", "c.csv"):
        Path(name).write_text("x\n")
    catalog = load_pipeline(str(Path(__file__).parent / "pipelines" / "text_catalog.py"))
    with pytest.warns(UntrackedPathWarning) as caught:
        assert catalog.run(store=str(store)).output() == (3, 1)
    assert [str(w.message) for w in caught if w.category is UntrackedPathWarning] == [
        "step 'plain' takes 'a.csv' (`catalog['a']`) as text: a file counts by its content only as a path, so "
        "editing a.csv leaves 'plain' cached. Annotate the parameter `catalog: dict[str, Path]` in 'plain' (text given "
        "to it is then read as a path), or add @step(untracked=\"catalog\") if 'plain' does not read it."]
    # Not 'annotated', whose annotations say they are paths.
    for name, changed in (("a.csv", "catalog"), ("b.csv", "extra"), ("c.csv", "maybe")):
        Path(name).write_text("x\ny\n")
        with pytest.warns(UntrackedPathWarning):
            run = catalog.run(store=str(store))
        assert run.steps["annotated"].reason == f"content of file `{changed}` changed ({tmp_path / name})"
        assert run.steps["plain"].status == "cached"  # the stale hit the warning names


def test_text_that_names_no_file_looks_like_no_path_or_is_untracked_is_not_named(tmp_path, store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("rf").write_text("a file named like a label\n")

    Path("written.csv").write_text("a file the step writes\n")

    @step
    def label(name: str, names: list) -> str:
        return name

    @step(untracked="out")
    def write(out: str) -> str:
        Path(out).write_text("written\n")
        return out

    @pipeline
    def labels():
        return label("rf", ["missing.csv", "v1.2"]), write("written.csv")

    assert labels.plan(store=str(store)).warnings == []


def _plugin(name: str):
    import importlib

    return importlib.import_module(f"orchestrator.{name}")


@step
def imports_by_name(name: str) -> str:
    return _plugin(name).__name__


@step
def imports_with_builtin(name: str) -> str:
    return __import__(name).__name__


@step(untracked="import_module")
def imports_quietly(name: str) -> str:
    return _plugin(name).__name__


def test_a_module_imported_by_a_name_known_at_run_time_is_named(tmp_path, store, monkeypatch):
    """``importlib.import_module(f"plugins.{name}")`` in a helper: editing the module it imports left the
    step cached without a word (docs said so); plan and run say where it happens, once per place."""
    monkeypatch.chdir(tmp_path)

    @pipeline
    def plugins(name: str = "errors"):
        return imports_by_name(name), imports_with_builtin("json"), imports_quietly(name), uses_number(1)

    plan = plugins.plan(store=str(store))
    assert len(plan.warnings) == 2
    assert plan.warnings[0].startswith(
        "step 'imports_by_name' imports a module named only at run time (importlib.import_module in `_plugin`)")
    assert "@step(untracked=\"import_module\")" in plan.warnings[0]
    assert plan.warnings[1].startswith(
        "step 'imports_with_builtin' imports a module named only at run time (__import__ in `imports_with_builtin`)")
    with pytest.warns(UntrackedPathWarning) as caught:
        assert plugins.run(store=str(store)).status == "succeeded"
    assert [str(w.message) for w in caught] == plan.warnings
