"""Stored objects of the user's own classes after the code moved: loaded where it now is, or recomputed.

A pickled object names its class by module: ``flow.Model`` under ``orch run pipelines/flow.py``,
``pipelines.flow.Model`` when the same file is imported as a package module. And a class moved
to another module keeps its step's key (a move is no edit), while its stored objects name the
module it left.
"""

from __future__ import annotations

import os
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
