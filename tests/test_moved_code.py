"""Stored objects of the user's own classes after the code moved: loaded where it now is, or recomputed.

A pickled object names its class by module: ``flow.Model`` under ``orch run pipelines/flow.py``,
``pipelines.flow.Model`` when the same file is imported as a package module. And a class moved
to another module keeps its step's key (a move is no edit), while its stored objects name the
module it left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

FLOW = '''
from dataclasses import dataclass
from orchestrator import pipeline, step


@dataclass
class Model:
    w: float


@step
def fit(w: float = 2.0) -> Model:
    return Model(w)


@step
def stats(m: Model) -> float:
    return m.w * 10


@pipeline
def flow(w: float = 2.0):
    return stats(fit(w))
'''


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def _orch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)


def test_an_object_stored_by_orch_run_loads_when_the_file_is_imported_as_a_package_module(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "flow.py").write_text(FLOW)
    done = _orch(tmp_path, "run", "pipelines/flow.py")
    assert done.returncode == 0, done.stderr

    # `fit` is cached (the same key), `stats` runs on the Model `orch run` stored as `flow.Model`.
    done = _python("from pipelines.flow import flow\n"
                   "r = flow.run(store='cache', rerun='stats')\n"
                   "print(r.status, r.steps['fit'].status, r.output(), r.error)", tmp_path)
    assert done.stdout.split()[:3] == ["succeeded", "cached", "20.0"], done.stdout + done.stderr


def test_a_class_moved_to_another_module_recomputes_what_stored_it_instead_of_failing(tmp_path):
    (tmp_path / "pk").mkdir()
    (tmp_path / "pk" / "__init__.py").write_text("")
    (tmp_path / "pk" / "est.py").write_text(
        "class Est:\n    def __init__(self, w):\n        self.w = w\n\n"
        "    def predict(self, x):\n        return x * self.w\n\n\n"
        "def build(w):\n    return Est(w)\n")
    pipeline_file = tmp_path / "p.py"
    pipeline_file.write_text(
        "from orchestrator import pipeline, step\nfrom pk.est import build\n\n\n"
        "@step\ndef fit():\n    return build(2)\n\n\n"
        "@step\ndef score(m) -> int:\n    return m.predict(3)\n\n\n"
        "@pipeline\ndef pp():\n    return score(fit())\n")
    assert _orch(tmp_path, "run", "p.py").returncode == 0
    (tmp_path / "pk" / "est.py").rename(tmp_path / "pk" / "estimators.py")
    pipeline_file.write_text(pipeline_file.read_text().replace("pk.est", "pk.estimators"))
    loaded = _python("import orchestrator\norchestrator.load('latest:fit', store='cache')", tmp_path)
    assert "`pk.est` is gone). Run the pipeline again" in loaded.stderr.splitlines()[-1], loaded.stderr
    done = _orch(tmp_path, "run", "p.py")
    assert done.returncode == 0, done.stderr  # a move keeps the keys: both cached
    pipeline_file.write_text(pipeline_file.read_text().replace("m.predict(3)", "m.predict(4)"))

    done = _orch(tmp_path, "run", "p.py")

    assert done.returncode == 0, done.stderr
    shown = _orch(tmp_path, "show", "latest", "--json")
    import json

    steps = {s["name"]: s for s in json.loads(shown.stdout)["steps"]}
    assert steps["score"]["status"] == "ran"
    assert steps["fit"]["status"] == "ran" and "pk.est" in steps["fit"]["reason"], steps["fit"]
    assert json.loads(_orch(tmp_path, "show", "latest", "--json").stdout)["status"] == "succeeded"


def test_a_module_of_the_same_last_name_is_not_taken_for_the_one_that_stored_the_object(tmp_path):
    """`a/flow.py` stored `flow.Model`; a notebook that imported `b.flow` got b's Model, with other code."""
    for package, body in (("a", "x * self.w"), ("b", "x + self.w")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "flow.py").write_text(
            FLOW.replace("    w: float\n", f"    w: float\n\n    def predict(self, x):\n        return {body}\n"))
    assert _orch(tmp_path, "run", "a/flow.py").returncode == 0
    done = _python("import orchestrator, b.flow\n"
                   "try:\n    m = orchestrator.load('latest:fit', store='cache')\n"
                   "except Exception as exc:\n    print('refused', exc)\nelse:\n    print('loaded', m.predict(10))",
                   tmp_path)
    assert done.stdout.startswith("refused") and f"{tmp_path / 'a'}" in done.stdout, done.stdout + done.stderr


def test_a_run_loads_the_class_of_the_file_it_imported_not_a_second_copy_of_that_file(tmp_path):
    """Stored as `pipelines.flow.Model` by a notebook, it loaded in `python -m orchestrator run
    pipelines/flow.py` by importing the file a second time: another class, and isinstance was False."""
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("")
    flow = tmp_path / "pipelines" / "flow.py"
    flow.write_text(FLOW.replace("return m.w * 10", "return float(isinstance(m, Model))"))
    assert _python("from pipelines.flow import flow\nassert flow.run(store='cache').status == 'succeeded'",
                   tmp_path).returncode == 0
    flow.write_text(flow.read_text().replace("float(isinstance(m, Model))", "float(isinstance(m, Model)) * 2"))
    done = _orch(tmp_path, "run", "pipelines/flow.py")
    assert done.returncode == 0, done.stderr
    done = _python("import orchestrator\nprint(orchestrator.load('latest:stats', store='cache'))", tmp_path)
    assert done.stdout.strip() == "2.0", done.stdout + done.stderr


def test_a_moved_top_level_module_and_a_class_a_pool_worker_stored_are_recomputed_too(tmp_path):
    """`est.py` renamed to `estimators.py` failed every run ('No module named est'); on the process pool,
    whose workers store classes by value, the old class loaded as a copy (isinstance False)."""
    (tmp_path / "est.py").write_text("class Est:\n    def __init__(self, w):\n        self.w = w\n")
    (tmp_path / "pk").mkdir()
    (tmp_path / "pk" / "__init__.py").write_text("")
    (tmp_path / "pk" / "old.py").write_text("class Other:\n    def __init__(self, w):\n        self.w = w\n")
    (tmp_path / "p.py").write_text(
        "from orchestrator import pipeline, step\nfrom est import Est\nfrom pk.old import Other\n\n\n"
        "@step\ndef fit():\n    return [Est(2), {'m': Other(3)}]\n\n\n"
        "@step\ndef use(ms) -> list:\n    return [isinstance(ms[0], Est), isinstance(ms[1]['m'], Other)]\n\n\n"
        "@pipeline\ndef pp():\n    return use(fit())\n")
    assert _orch(tmp_path, "run", "p.py", "--executor", "process", "--workers", "1").returncode == 0
    (tmp_path / "est.py").rename(tmp_path / "estimators.py")
    (tmp_path / "pk" / "old.py").rename(tmp_path / "pk" / "new.py")
    (tmp_path / "p.py").write_text((tmp_path / "p.py").read_text().replace("from est ", "from estimators ")
                                   .replace("pk.old", "pk.new"))
    for executor in ("process", "sequential"):
        done = _orch(tmp_path, "run", "p.py", "--executor", executor, "--rerun", "use")
        assert done.returncode == 0, done.stderr
        done = _python("import orchestrator\nprint(orchestrator.load('latest:use', store='cache'))", tmp_path)
        assert done.stdout.strip() == "[True, True]", (executor, done.stdout + done.stderr)


def test_an_object_stored_in_a_copy_of_the_project_loads_in_another_copy(tmp_path):
    """Objects record their module's file: a checkout elsewhere (a copied project, CI) has it at another path,
    and a notebook there that imported `pipelines.flow` could not load `flow.Model` stored by `orch run`."""
    first = tmp_path / "first"
    (first / "pipelines").mkdir(parents=True)
    (first / "pipelines" / "__init__.py").write_text("")
    (first / "pipelines" / "flow.py").write_text(FLOW)
    assert _orch(first, "run", "pipelines/flow.py").returncode == 0
    shutil.copytree(first, tmp_path / "second")
    shutil.rmtree(first)
    done = _python("import orchestrator\nfrom pipelines.flow import Model, flow\n"
                   "print(isinstance(orchestrator.load('latest:fit', store='cache'), Model))\n"
                   "r = flow.run(store='cache', rerun='stats')\nprint(r.status, r.steps['fit'].status)",
                   tmp_path / "second")
    assert done.stdout.split() == ["True", "succeeded", "cached"], done.stdout + done.stderr


def test_objects_a_script_stored_load_as_its_class_where_the_file_is_a_module(tmp_path):
    """`python train.py` (a pipeline run under `if __name__ == "__main__"`) stored its classes by value:
    under `orch run train.py` they loaded as copies, so isinstance and Enum identity were False."""
    script = FLOW.replace("return m.w * 10", "return float(isinstance(m, Model))") + (
        "\n\nif __name__ == '__main__':\n    assert flow.run(store='cache').status == 'succeeded'\n")
    (tmp_path / "train.py").write_text(script)
    assert subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, timeout=120).returncode == 0
    (tmp_path / "train.py").write_text(script.replace("float(isinstance(m, Model))", "float(isinstance(m, Model)) * 2"))
    done = _orch(tmp_path, "run", "train.py")
    assert done.returncode == 0, done.stderr
    done = _python("import orchestrator\nprint(orchestrator.load('latest:stats', store='cache'))\n"
                   "print(type(orchestrator.load('latest:fit', store='cache')).__name__)", tmp_path)
    assert done.stdout.split() == ["2.0", "Model"], done.stdout + done.stderr  # a notebook elsewhere: the copy
