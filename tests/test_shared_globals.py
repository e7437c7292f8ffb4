"""A step that changes a module-level value another step reads: warned of when the pipeline is built.

``setup`` sets ``CONFIG["scale"]`` and ``use`` reads it. Sequentially ``use``
sees the change, on a process pool or Dask it sees the module as imported,
and when ``setup`` is cached it sees nothing of it, while its key counted
``CONFIG`` as it was when the pipeline was built: one key, two outputs. A memo
that a function fills and only it reads is no such thing, nor a global that
steps only read.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import pytest

from orchestrator.loader import load_pipeline

TESTER = '''
from orchestrator import step, pipeline
CONFIG = {"scale": 1}
@step
def setup(scale: int) -> int:
    CONFIG["scale"] = scale; return scale
@step
def use(k: int, x: int) -> int: return x * k * CONFIG["scale"]
@step
def tot(xs: list) -> int: return sum(xs)
@pipeline
def g(scale: int = 3): return tot(use.map([1, 2, 3], setup(scale)))
'''


def _said(writer: str, name: str, file: str, reader: str, where: str = "") -> str:
    return (f"step '{writer}' changes {name} ({file}){where}, which step '{reader}' reads: on a process pool or "
            f"Dask '{reader}' sees the module as it was imported, and when '{writer}' is cached it does not run "
            f"at all, so '{reader}' may compute with either value. Return the value from '{writer}' and pass it "
            f"to '{reader}' instead.")


def test_the_testers_pipeline_is_warned_of_by_orch_plan_and_orch_run(orch, project):
    (project / "g.py").write_text(TESTER)
    message = _said("setup", "CONFIG", "g.py", "use")
    planned = orch("plan", "g.py", "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["warnings"] == [message]
    ran = orch("run", "g.py")
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count(f"warning: {message}") == 1  # once per run, though `use` is three nodes


def _load(tmp_path: Path, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return load_pipeline(str(path))


def test_pipeline_run_warns_once_as_a_user_warning(tmp_path):
    flow = _load(tmp_path, "tester_flow", TESTER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = flow.run(store=str(tmp_path / "store"))
    assert run.status == "succeeded"
    assert [str(w.message) for w in caught] == [_said("setup", "CONFIG", "tester_flow.py", "use")]
    assert all(w.category is UserWarning for w in caught)


_CHANGES = {
    "item": 'CONFIG["scale"] = scale',
    "augmented item": 'CONFIG["scale"] += scale',
    "nested item": 'CONFIG["inner"]["scale"] = scale',
    "computed key": 'CONFIG["sc" + "ale" * (scale > 0)] = scale',
    "attribute": "SETTINGS.scale = scale",
    "deleted item": 'del CONFIG["scale"]',
    "update": 'CONFIG.update(scale=scale)',
    "setdefault": 'CONFIG.setdefault("scale", scale)',
    "pop": 'CONFIG.pop("scale")',
    "clear": "CONFIG.clear()",
    "append": "ITEMS.append(scale)",
    "extend": "ITEMS.extend([scale])",
    "add": "SEEN.add(scale)",
    "method of an item": 'CONFIG["inner"].update(scale=scale)',
    "rebinding": "global SCALE\n    SCALE = scale",
    "augmented rebinding": "global SCALE\n    SCALE += scale",
    "in a comprehension": "[CONFIG.update(scale=s) for s in range(scale)]",
}
_READS = {
    "item": 'CONFIG["scale"]',
    "augmented item": 'CONFIG["scale"]',
    "nested item": 'CONFIG["inner"]["scale"]',
    "computed key": 'CONFIG["scale"]',
    "attribute": "SETTINGS.scale",
    "deleted item": 'CONFIG.get("scale", 1)',
    "update": 'CONFIG["scale"]',
    "setdefault": 'CONFIG["scale"]',
    "pop": 'CONFIG.get("scale", 1)',
    "clear": 'CONFIG.get("scale", 1)',
    "append": "len(ITEMS)",
    "extend": "len(ITEMS)",
    "add": "len(SEEN)",
    "method of an item": 'CONFIG["inner"]["scale"]',
    "rebinding": "SCALE",
    "augmented rebinding": "SCALE",
    "in a comprehension": 'CONFIG["scale"]',
}
_GLOBALS = '''
import types
from orchestrator import step, pipeline
CONFIG = {"scale": 1, "inner": {"scale": 1}}
SETTINGS = types.SimpleNamespace(scale=1)
ITEMS = [1]
SEEN = {1}
SCALE = 1
'''
_NAMES = {"attribute": "SETTINGS", "append": "ITEMS", "extend": "ITEMS", "add": "SEEN", "rebinding": "SCALE",
          "augmented rebinding": "SCALE"}


@pytest.mark.parametrize("how", sorted(_CHANGES))
def test_each_way_of_changing_a_global_is_named(tmp_path, how):
    flow = _load(tmp_path, "changes", _GLOBALS + f'''
@step
def setup(scale: int) -> int:
    {_CHANGES[how]}
    return scale

@step
def use(k: int, x: int) -> int:
    return x * k * {_READS[how]}

@pipeline
def g(scale: int = 3):
    return use(1, setup(scale))
''')
    assert flow.plan(store=str(tmp_path / "store")).warnings == [
        _said("setup", _NAMES.get(how, "CONFIG"), "changes.py", "use")]


_HELPERS = '''
CONFIG = {"scale": 1}


def configure(scale):
    CONFIG["scale"] = scale


def current():
    return CONFIG["scale"]
'''


def test_a_change_and_a_read_in_helpers_of_another_module_are_named(tmp_path, monkeypatch):
    (tmp_path / "shared_helpers.py").write_text(_HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    flow = _load(tmp_path, "through_helpers", '''
        import shared_helpers
        from orchestrator import step, pipeline

        @step
        def setup(scale: int) -> int:
            shared_helpers.configure(scale)
            return scale

        @step
        def use(x: int) -> int:
            return x * shared_helpers.current()

        @pipeline
        def g(scale: int = 3):
            return use(setup(scale))
    ''')
    assert flow.plan(store=str(tmp_path / "store")).warnings == [
        _said("setup", "CONFIG", "shared_helpers.py", "use", " in `shared_helpers.configure`")]


def test_a_memo_a_helper_fills_and_globals_steps_only_read_are_not_warned_of(tmp_path):
    """The memo pattern of docs/concepts.md: `square` fills `_CACHE` and alone reads it, called by two steps;
    a lazy singleton a helper makes once; a memo a factory's function keeps; a constant every step reads."""
    flow = _load(tmp_path, "memos", '''
        from orchestrator import step, pipeline

        CONFIG = {"scale": 2}
        _CACHE = {}
        _MODEL = None


        def square(x):
            if x not in _CACHE:
                _CACHE[x] = x * x
            return _CACHE[x]


        def model():
            global _MODEL
            if _MODEL is None:
                _MODEL = {"weight": 3}
            return _MODEL


        def memoised_by(factor):
            memo = {}

            def times(x):
                if x not in memo:
                    memo[x] = x * factor
                return memo[x]
            return times


        triple = memoised_by(3)


        @step
        def first(n: int) -> int:
            return square(n) + model()["weight"] + triple(n)


        @step
        def second(n: int) -> int:
            return square(n) * CONFIG["scale"] * model()["weight"]


        @step
        def third(a: int, b: int) -> int:
            return a + b + CONFIG.get("scale", 0)


        @pipeline
        def g(n: int = 3):
            return third(first(n), second(n))
    ''')
    assert flow.plan(store=str(tmp_path / "store")).warnings == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert flow.run(store=str(tmp_path / "store")).status == "succeeded"
    assert [str(w.message) for w in caught] == []


def test_the_notebook_sessions_memos_are_not_warned_of(tmp_path):
    from tests.test_notebook import CELLS

    flow = _load(tmp_path, "notebook_cells", CELLS)
    assert flow.plan(store=str(tmp_path / "store")).warnings == []


def test_steps_that_change_one_value_are_one_line(tmp_path):
    """Thousands of a factory's steps appending to one log would otherwise be thousands of lines."""
    flow = _load(tmp_path, "two_writers", '''
        from orchestrator import step, pipeline

        LOG = []

        @step
        def first(x: int) -> int:
            LOG.append(x)
            return x

        @step
        def second(x: int) -> int:
            LOG.append(x)
            return x

        @step
        def count(a: int, b: int) -> int:
            return a + b + len(LOG)

        @pipeline
        def g(x: int = 1):
            return count(first(x), second(x))
    ''')
    assert flow.plan(store=str(tmp_path / "store")).warnings == [
        "step 'first' (and 1 other step) changes LOG (two_writers.py), which step 'count' reads: on a process "
        "pool or Dask 'count' sees the module as it was imported, and when 'first' is cached it does not run at "
        "all, so 'count' may compute with either value. Return the value from 'first' and pass it to 'count' "
        "instead."]
