"""An edit re-runs exactly the steps that depend on what was edited (through `orch run`)."""

from __future__ import annotations

import pytest

from .conftest import edit_file, reran_after_edit, run_once_per_session

ALL = {"base", "uses_helper", "uses_other", "uses_imported", "uses_class", "uses_const",
       "uses_closure", "uses_default", "uses_library", "plain"}

EDITS = [
    # (file, old text, new text, steps expected to re-run)
    ("edits.py", "    record(\"plain\")\n    return x - 1", "    record(\"plain\")\n    return x - 2", {"plain"}),
    ("edits.py", "    return x + 1\n", "    return x + 11\n", {"uses_helper"}),
    ("other_helpers.py", "return x * 3", "return x * 4", {"uses_other", "uses_imported"}),
    ("edits.py", "        return x * 2", "        return x * 3", {"uses_class"}),
    ("edits.py", "THRESHOLD = 3", "THRESHOLD = 2", {"uses_const"}),
    ("edits.py", "factor = 10", "factor = 11", {"uses_closure"}),
    ("edits.py", "def uses_default(x, k=5)", "def uses_default(x, k=6)", {"uses_default"}),
    # Another object of the same library under the same name: same package version, other code.
    ("edits.py", "from statistics import mean as summarize", "from statistics import median as summarize",
     {"uses_library"}),
]

NO_RERUN_EDITS = [
    ("edits.py", "THRESHOLD = 3", "# a comment\n\n\nTHRESHOLD = 3  # trailing comment"),
    ("edits.py", "def same_module_helper(x):\n", "def same_module_helper(x):\n    \"\"\"A docstring.\"\"\"\n"),
    ("edits.py", "@step(retries=0)", "@step(retries=5, retry_delay=2.0, timeout=300)"),
    ("other_helpers.py", "def triple(x):", "\n\n# moved down\ndef triple(x):"),
]


def test_first_run_runs_all_then_all_cached(orch, calls):
    first = orch("run", "edits.py")
    assert first.returncode == 0, first.stderr
    assert calls.ran() == ALL
    calls.clear()
    second = orch("run", "edits.py")
    assert second.returncode == 0, second.stderr
    assert calls.ran() == set()


@pytest.mark.parametrize("file,old,new,expected", EDITS, ids=[min(e[3]) for e in EDITS])  # min: a set's first item differs per process
def test_edit_reruns_exactly_dependents(orch, calls, project, file, old, new, expected):
    assert reran_after_edit(orch, calls, project, "edits.py", file, old, new) == expected


@pytest.mark.parametrize("file,old,new", NO_RERUN_EDITS, ids=["comment", "docstring", "settings", "line-shift"])
def test_formatting_and_settings_edits_stay_cached(orch, calls, project, file, old, new):
    run_once_per_session(orch, "edits.py")
    calls.clear()
    edit_file(project, file, old, new)
    result = orch("run", "edits.py")
    assert result.returncode == 0, result.stderr
    assert calls.ran() == set()


def test_plan_explains_helper_change(orch, calls, project):
    run_once_per_session(orch, "edits.py")
    edit_file(project, "other_helpers.py", "return x * 3", "return x * 4")
    plan = orch("plan", "edits.py", "--json")
    assert plan.returncode == 0, plan.stderr
    import json

    steps = {s["name"]: s for s in json.loads(plan.stdout)["steps"]}
    assert steps["uses_other"]["status"] == "will run"
    assert "triple" in steps["uses_other"]["reason"]
    assert steps["plain"]["status"] == "cached"


def test_plan_says_will_run_for_a_changed_step_below_one_that_runs(orch, calls, project):
    """Its inputs are unknown until `base` runs, but its own edit makes it run whatever they are."""
    import json

    run_once_per_session(orch, "edits.py")
    edit_file(project, "edits.py", "    record(\"base\")\n    return n", "    record(\"base\")\n    return n + 0")
    edit_file(project, "edits.py", "    record(\"plain\")\n    return x - 1", "    record(\"plain\")\n    return x - 2")
    plan = orch("plan", "edits.py", "--json")
    steps = {s["name"]: s for s in json.loads(plan.stdout)["steps"]}
    assert steps["base"]["status"] == "will run"
    assert (steps["plain"]["status"], steps["plain"]["reason"]) == ("will run", "its code changed")
    assert steps["uses_helper"]["status"] == "may run"


def test_parameter_change_reruns_and_plan_says_why(orch, calls):
    run_once_per_session(orch, "edits.py")
    calls.clear()
    plan = orch("plan", "edits.py", "-p", "n=5", "--json")
    import json

    steps = {s["name"]: s for s in json.loads(plan.stdout)["steps"]}
    assert steps["base"]["status"] == "will run"
    assert "parameter `n` changed" in steps["base"]["reason"]
    assert steps["plain"]["status"] == "may run"
    assert orch("run", "edits.py", "-p", "n=5").returncode == 0
    assert calls.ran() == ALL


def test_early_cutoff_keeps_downstream_cached(orch, calls, project):
    run_once_per_session(orch, "edits.py")
    calls.clear()
    # base's code changes but its output (n) stays the same: only base re-runs.
    edit_file(project, "edits.py", "    record(\"base\")\n    return n", "    record(\"base\")\n    return int(n)")
    result = orch("run", "edits.py")
    assert result.returncode == 0, result.stderr
    assert calls.ran() == {"base"}


def test_keys_equal_from_cli_and_python_import(orch, calls, project, store):
    import json
    import subprocess
    import sys

    assert orch("run", "edits.py").returncode == 0
    calls.clear()
    code = (
        "import sys; sys.path.insert(0, '.');"
        "import edits; r = edits.edits.run(store=sys.argv[1]);"
        "print(sorted(s.status for s in r.steps.values()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store)], cwd=project, env=orch.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert calls.ran() == set()
    assert json.loads(out.stdout.replace("'", '"')) == ["cached"] * len(ALL)


def test_plan_below_a_running_step_matches_any_recent_run_not_just_the_last(orch, calls):
    """`second` had y=1 two runs ago: with x changed, only its (unknown) input decides."""
    import json

    for y in ("1", "2"):
        assert orch("run", "two_params.py", "-p", f"y={y}").returncode == 0
    plan = orch("plan", "two_params.py", "-p", "x=5", "-p", "y=1", "--json")
    steps = {s["name"]: s for s in json.loads(plan.stdout)["steps"]}
    assert steps["first"]["status"] == "will run"
    assert steps["second"]["status"] == "may run", steps["second"]


@pytest.mark.parametrize("old,new,step,reason", [
    ("factor = 10", "factor = 11", "uses_closure", "code of `factor` changed"),
    ("def uses_default(x, k=5)", "def uses_default(x, k=6)", "uses_default", "parameter `k` changed (5 → 6)"),
    ("THRESHOLD = 3", "THRESHOLD = 2", "uses_const", "code of `THRESHOLD` changed"),
])
def test_the_reason_names_the_closure_constant_or_default_that_changed(orch, calls, project, old, new, step,
                                                                        reason):
    import json

    run_once_per_session(orch, "edits.py")
    edit_file(project, "edits.py", old, new)
    assert orch("run", "edits.py").returncode == 0
    steps = {s["name"]: s for s in json.loads(orch("show", "latest", "--json").stdout)["steps"]}
    assert steps[step]["reason"] == reason


def test_the_steps_own_default_reruns_only_the_calls_that_use_it(orch, calls, project):
    """A call that passes its own `k` does not use the default: editing it leaves that call cached."""
    import json

    assert reran_after_edit(orch, calls, project, "own_default.py", "own_default.py",
                            "def scale(x: int, k=5)", "def scale(x: int, k=6)") == {"scale:6"}
    steps = {s["name"]: s for s in json.loads(orch("show", "latest", "--json").stdout)["steps"]}
    assert (steps["scale"]["reason"], steps["scale_2"]["status"]) == ("parameter `k` changed (5 → 6)", "cached")
    # A helper's default is part of the code both calls run.
    calls.clear()
    edit_file(project, "own_default.py", "def shift(x, by=1)", "def shift(x, by=2)")
    assert orch("run", "own_default.py").returncode == 0
    assert calls.ran() == {"scale:6", "scale:2"}


DECORATED = '''
import functools
from orchestrator import step, pipeline

def timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper

@step
@timed
def load(n: int = 3) -> list:
    return list(range(n))

@pipeline
def decorated():
    return load()
'''


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("return list(range(n))", "return list(range(n + 1))", "its code changed"),
    ("return fn(*args, **kwargs)", "return fn(*args, **kwargs)[::-1]",
     "code of `timed` changed"),
], ids=["step-body", "decorator"])
def test_under_a_decorator_the_reason_tells_the_step_from_its_decorator(orch, project, old, new, reason):
    import json

    (project / "decorated.py").write_text(DECORATED)
    run_once_per_session(orch, "decorated.py")
    edit_file(project, "decorated.py", old, new)
    plan = orch("plan", "decorated.py", "--json")
    assert plan.returncode == 0, plan.stderr
    assert [(s["name"], s["reason"]) for s in json.loads(plan.stdout)["steps"]] == [("load", reason)]


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("@step\n@timed", "@step(version=\"2\")\n@timed", "version changed (none → 2)"),
    ("@step\n@timed", "@step(version=3)\n@timed", "version changed (none → 3)"),
], ids=["set", "number"])
def test_a_version_given_by_hand_reruns_the_step_and_says_so(orch, calls, project, old, new, reason):
    """``@step(version=...)`` forces a new key; a step that had none reads "none", not Python's None."""
    import json

    (project / "decorated.py").write_text(DECORATED)
    run_once_per_session(orch, "decorated.py")
    edit_file(project, "decorated.py", old, new)
    plan = orch("plan", "decorated.py", "--json")
    assert [(s["name"], s["reason"]) for s in json.loads(plan.stdout)["steps"]] == [("load", reason)]
    run = orch("run", "decorated.py", "--json")
    assert run.returncode == 0, run.stderr
    assert [(s["name"], s["status"]) for s in json.loads(run.stdout)["steps"]] == [("load", "ran")]
    assert orch("run", "decorated.py").returncode == 0
    edit_file(project, "decorated.py", new, old)  # back to no version: the first result is still there
    again = orch("run", "decorated.py", "--json")
    assert [(s["name"], s["status"]) for s in json.loads(again.stdout)["steps"]] == [("load", "cached")]


_TEAM_FILES = {
    "teamproj/__init__.py": "from .features import clean, ratio\n",
    "teamproj/config.py": "MIN_AGE = 18\nSCALE = 2\n",
    "teamproj/settings.py": "from .config import SCALE  # re-exported for the features\n",
    "teamproj/utils.py": ("import functools\n\n\ndef scale(x, factor=1.0):\n    return x * factor\n\n\n"
                          "half = functools.partial(scale, factor=0.5)\n"),
    "teamproj/features.py": ("from .config import MIN_AGE\nfrom .settings import SCALE as FACTOR\n"
                             "from .utils import half\n\n\ndef clean(ages):\n    return [a for a in ages if a >= MIN_AGE]\n\n\n"
                             "def ratio(ages):\n    return [half(a) * FACTOR for a in ages]\n"),
    "team_train.py": ("from orchestrator import pipeline, step\nfrom teamproj import clean, ratio\n\n\n"
                      "@step\ndef cleaned(ages: list) -> list:\n    return clean(ages)\n\n\n"
                      "@step\ndef ratios(ages: list) -> list:\n    return ratio(ages)\n\n\n"
                      "@pipeline\ndef team(ages: list = [15, 20, 40]):  # noqa: B006\n"
                      "    return cleaned(ages), ratios(ages)\n"),
}


@pytest.mark.parametrize("file,old,new,step,reason", [
    ("teamproj/config.py", "MIN_AGE = 18", "MIN_AGE = 21", "cleaned", "code of `config.MIN_AGE` changed"),
    # Re-exported by settings.py and read under another name: named where it is defined.
    ("teamproj/config.py", "SCALE = 2", "SCALE = 3", "ratios", "code of `config.SCALE` changed"),
    ("teamproj/utils.py", "factor=0.5)", "factor=0.25)", "ratios", "code of `utils.half` changed"),
])
def test_a_constant_imported_from_another_module_is_named_by_the_module_that_defines_it(
        orch, project, file, old, new, step, reason):
    """`from .config import MIN_AGE` in features.py: the user edits config.py, and the reason said
    ``code of `features.MIN_AGE` changed``, sending them to a file where MIN_AGE is an import line."""
    import json

    for name, text in _TEAM_FILES.items():
        (project / name).parent.mkdir(exist_ok=True)
        (project / name).write_text(text)
    run_once_per_session(orch, "team_train.py")
    edit_file(project, file, old, new)
    plan = orch("plan", "team_train.py", "--json")
    assert plan.returncode == 0, plan.stderr
    [entry] = [s for s in json.loads(plan.stdout)["steps"] if s["status"] != "cached"]
    assert (entry["name"], entry["reason"]) == (step, reason)
    assert orch("run", "team_train.py").returncode == 0
    steps = {s["name"]: s for s in json.loads(orch("show", "latest", "--json").stdout)["steps"]}
    assert steps[step]["reason"] == reason


def test_a_part_shown_under_another_module_is_the_same_part():
    """Keys count a constant or a helper by its name alone: recorded as `features.MIN_AGE` (before
    constants were named by their module, or before a helper moved) and now `config.MIN_AGE`, it is
    one part: no change when its digest is the same, a change of `config.MIN_AGE` when not."""
    from orchestrator.cache import explain

    old = {"code": "c1", "code_parts": {"<self>": "s", "features.MIN_AGE": "d1", "helpers.clean": "h1"}}
    new = {"code": "c2", "code_parts": {"<self>": "s", "config.MIN_AGE": "d1", "text.clean": "h2"}}
    assert explain(old, new) == "code of `text.clean` changed"
    new["code_parts"]["config.MIN_AGE"] = "d2"
    assert explain(old, new) == "code of `config.MIN_AGE` changed; code of `text.clean` changed"
    # A constant of the step's own module is shown without one.
    old["code_parts"] = {"<self>": "s", "MIN_AGE": "d1"}
    new["code_parts"] = {"<self>": "s", "config.MIN_AGE": "d1", "config.OTHER": "o"}
    assert explain(old, new) == "now uses `config.OTHER`"


_MODEL_FILES = {
    "teammodels.py": ("class Base:\n    SCALE = 2\n\n    def prepare(self, xs):\n        return [x * self.SCALE for x in xs]\n\n"
                      "    def standardize(self, xs):\n        return [x - 1 for x in xs]\n\n\n"
                      "class Linear(Base):\n    def prepare(self, xs):\n        return self.standardize(super().prepare(xs))\n"),
    "model_train.py": ("from orchestrator import pipeline, step\nfrom teammodels import Linear\n\n\n"
                       "@step\ndef fit(xs: list) -> list:\n    return Linear().prepare(xs)\n\n\n"
                       "@pipeline\ndef modeling(xs: list = [1, 2, 3]):  # noqa: B006\n    return fit(xs)\n"),
}


@pytest.mark.parametrize("old,new,reason", [
    ("return [x - 1 for x in xs]", "return [x - 2 for x in xs]", "code of `teammodels.Base.standardize` changed"),
    ("    def standardize(self, xs):", "    def describe(self):\n        return 'base'\n\n    def standardize(self, xs):",
     "new method `teammodels.Base.describe`"),
    ("return [x - 1 for x in xs]", "return [x - self.SCALE for x in xs]\n\n    def __repr__(self):\n        return 'b'",
     "code of `teammodels.Base.standardize` changed; new method `teammodels.Base.__repr__`"),
    # Not a method: the class is named.
    ("    SCALE = 2", "    SCALE = 3", "code of `teammodels.Base` changed"),
])
def test_a_class_edit_names_the_methods_that_changed(orch, project, old, new, reason):
    """A base class's method only one subclass uses: the reason said ``code of `models.Base` changed``
    of a class of thirty methods; it names the method edited (a class still counts whole in the key)."""
    import json

    for name, text in _MODEL_FILES.items():
        (project / name).write_text(text)
    run_once_per_session(orch, "model_train.py")
    edit_file(project, "teammodels.py", old, new)
    plan = orch("plan", "model_train.py", "--json")
    assert plan.returncode == 0, plan.stderr
    assert [(s["name"], s["reason"]) for s in json.loads(plan.stdout)["steps"]] == [("fit", reason)]
    assert orch("run", "model_train.py").returncode == 0
    [fit] = json.loads(orch("show", "latest", "--json").stdout)["steps"]
    assert fit["reason"] == reason


def test_a_class_recorded_without_its_methods_is_named_whole():
    """A key an older version recorded has no methods: the reason names the class, as it did."""
    from orchestrator.cache import explain

    old = {"code": "c1", "code_parts": {"<self>": "s", "models.Base": "b1"}}
    new = {"code": "c2", "code_parts": {"<self>": "s", "models.Base": "b2"},
           "methods": {"models.Base": {"fit": "f", "score": "g"}}}
    assert explain(old, new) == "code of `models.Base` changed"
    old["methods"] = {"models.Base": {"fit": "f0", "score": "g0", "a": "1", "b": "2", "c": "3"}}
    new["methods"]["models.Base"].update(a="4", b="5", c="6")
    assert explain(old, new) == ("code of `models.Base.fit`, `models.Base.score`, `models.Base.a` and 2 more "
                                 "changed")


_CONFIG_FILES = {
    "teamconfig.py": ("from dataclasses import dataclass, field\n\nDEPTH_CAP = 8\n\n\n@dataclass\nclass Optimizer:\n"
                      "    beta: float = 0.9\n\n    def decay(self):\n        return 1 - self.beta\n\n\n"
                      "@dataclass\nclass ModelConfig:\n"
                      "    n_estimators: int = 30\n    max_depth: int = 5\n"
                      "    opt: Optimizer = field(default_factory=Optimizer)\n\n"
                      "    def forest_kwargs(self):\n        return {'n': self.n_estimators, 'depth': self.max_depth}\n\n"
                      "    def capped(self):\n        return min(self.max_depth, DEPTH_CAP)\n"),
    "config_train.py": ("from orchestrator import pipeline, step\nfrom teamconfig import ModelConfig\n\n\n"
                        "@step\ndef fit(cfg: ModelConfig) -> dict:\n"
                        "    return {**cfg.forest_kwargs(), 'cap': cfg.capped(), 'decay': cfg.opt.decay()}\n\n\n"
                        "@step\ndef report(n: int) -> int:\n    return n\n\n\n"
                        "@pipeline\ndef configured(model_cfg: ModelConfig = ModelConfig(), n: int = 1):  # noqa: B008\n"
                        "    return fit(model_cfg), report(n)\n"),
}


@pytest.mark.parametrize("old,new,reason", [
    ("'depth': self.max_depth}", "'depth': self.max_depth, 'jobs': 2}",
     "code of `teamconfig.ModelConfig.forest_kwargs` changed"),
    ("    def capped(self):", "    def describe(self):\n        return 'forest'\n\n    def capped(self):",
     "new method `teamconfig.ModelConfig.describe`"),
    # What its code reads outside its methods: the class is named.
    ("DEPTH_CAP = 8", "DEPTH_CAP = 4", "code of `teamconfig.ModelConfig` changed"),
    # A config in one of its fields.
    ("return 1 - self.beta", "return 1 - self.beta ** 2", "code of `teamconfig.Optimizer.decay` changed"),
    # A field out of its repr: the class is named, not the methods the dataclass made from its fields.
    ("    max_depth: int = 5\n", "    max_depth: int = 5\n    n_jobs: int = field(default=2, repr=False)\n",
     "code of `teamconfig.ModelConfig` changed"),
], ids=["method", "new-method", "constant", "nested", "hidden-field"])
def test_an_edit_of_a_config_parameters_class_names_its_code(orch, project, old, new, reason):
    """A config passed as a parameter whose class's method was edited was explained as
    ``parameter `model_cfg` changed (it prints the same: its code or contents changed)``."""
    import json

    for name, text in _CONFIG_FILES.items():
        (project / name).write_text(text)
    run_once_per_session(orch, "config_train.py")
    edit_file(project, "teamconfig.py", old, new)
    plan = orch("plan", "config_train.py", "--json")
    assert plan.returncode == 0, plan.stderr
    assert [(s["name"], s["status"], s["reason"]) for s in json.loads(plan.stdout)["steps"]] == [
        ("fit", "will run", reason), ("report", "cached", "cached")]
    assert orch("run", "config_train.py").returncode == 0
    steps = json.loads(orch("show", "latest", "--json").stdout)["steps"]
    assert [s["reason"] for s in steps if s["name"] == "fit"] == [reason]
    diff = json.loads(orch("diff", "--json").stdout)
    assert [(s["name"], s["reasons"], s["kinds"]) for s in diff["steps"]] == [("fit", [reason], ["code"])]


def test_the_object_a_class_bodys_step_runs_on_is_not_explained_by_its_class_s_methods(orch, project):
    """Its key counts the members the step reaches only: `other`, which `fit` never calls, is not named."""
    import json

    (project / "trainer_flow.py").write_text(
        "from orchestrator import pipeline, step\n\n\nclass Trainer:\n    def __init__(self, k):\n        self.k = k\n\n"
        "    def helper(self):\n        return self.k * 2\n\n    def other(self):\n        return 0\n\n"
        "    @step\n    def fit(self, x: int) -> int:\n        return self.helper() + x\n\n\nT = Trainer(3)\n\n\n"
        "@pipeline\ndef trained(x: int = 1):\n    return T.fit(x)\n")
    run_once_per_session(orch, "trainer_flow.py")
    edit_file(project, "trainer_flow.py", "self.k * 2", "self.k * 3")
    edit_file(project, "trainer_flow.py", "return 0", "return 1")
    [fit] = json.loads(orch("plan", "trainer_flow.py", "--json").stdout)["steps"]
    assert fit["status"] == "will run" and "other" not in fit["reason"], fit["reason"]


def test_a_config_holding_a_path_whose_class_was_edited_names_the_code_not_the_file(orch, project):
    """``content of file `cfg` changed (/abs/train.csv)`` was said of a file nobody touched."""
    import json

    (project / "train.csv").write_text("a,b\n")
    (project / "pathcfg.py").write_text(
        "from dataclasses import dataclass\nfrom pathlib import Path\n\n\n@dataclass\nclass Cfg:\n"
        "    train: Path = Path('train.csv')\n    alpha: float = 0.5\n\n"
        "    def scaled(self):\n        return self.alpha * 2\n")
    (project / "path_train.py").write_text(
        "from orchestrator import pipeline, step\nfrom pathcfg import Cfg\n\n\n"
        "@step\ndef fit(cfg: Cfg) -> float:\n    return cfg.scaled() + len(cfg.train.read_text())\n\n\n"
        "@pipeline\ndef pathed(cfg: Cfg = Cfg()):  # noqa: B008\n    return fit(cfg)\n")
    run_once_per_session(orch, "path_train.py")
    edit_file(project, "pathcfg.py", "self.alpha * 2", "self.alpha * 3")

    def reason() -> str:
        [fit] = json.loads(orch("plan", "path_train.py", "--json").stdout)["steps"]
        return str(fit["reason"])

    assert reason() == "code of `pathcfg.Cfg.scaled` changed"
    assert orch("run", "path_train.py").returncode == 0
    assert [s["kinds"] for s in json.loads(orch("diff", "--json").stdout)["steps"]] == [["code"]]
    (project / "train.csv").write_text("a,b\n1,2\n")  # the file edited: said, as before
    assert reason() == f"content of file `cfg` changed ({project / 'train.csv'})"


def test_a_config_recorded_without_its_class_code_says_what_it_said_before():
    """A key an older version recorded has no value_code: the reason is the one it was."""
    from orchestrator.cache import explain

    old = {"code": "c", "params": {"cfg": "p1"}, "values": {"cfg": "Cfg(k=1)"}}
    new = {"code": "c", "params": {"cfg": "p2"}, "values": {"cfg": "Cfg(k=1)"},
           "value_code": {"cfg": {"m.Cfg": {"code": "x2", "methods": {"twice": "t2"}}}}}
    assert explain(old, new) == "parameter `cfg` changed (it prints the same: its code or contents changed)"
    old["value_code"] = {"cfg": {"m.Cfg": {"code": "x2", "methods": {"twice": "t2"}}}}
    assert explain(old, new) == "parameter `cfg` changed (it prints the same: its code or contents changed)"
    old["value_code"]["cfg"]["m.Cfg"] = {"code": "x1", "methods": {"twice": "t1"}}
    assert explain(old, new) == "code of `m.Cfg.twice` changed"


def test_an_edited_function_passed_as_a_parameter_names_its_code(orch, project):
    """``loss=losses.focal`` whose body was edited said ``parameter `loss` changed (it prints the same: ...)``."""
    import json

    (project / "losses.py").write_text("def focal(x):\n    return x * 2\n\n\ndef plain(x):\n    return x\n")
    (project / "loss_train.py").write_text(
        "from orchestrator import pipeline, step\nimport losses\n\n\n"
        "@step\ndef fit(x: int, loss) -> int:\n    return loss(x)\n\n\n"
        "@pipeline\ndef lossy(x: int = 2, loss=losses.focal):\n    return fit(x, loss)\n")
    run_once_per_session(orch, "loss_train.py")
    edit_file(project, "losses.py", "return x * 2", "return x * 3")
    [fit] = json.loads(orch("plan", "loss_train.py", "--json").stdout)["steps"]
    assert (fit["status"], fit["reason"]) == ("will run", "code of `losses.focal` changed")


# Code a step runs that no name in its code reads: (files, pipeline file, edit, the step's reason).
_UNNAMED_CODE = {
    "subclasses": (
        {"mp/__init__.py": "",
         "mp/models/__init__.py": "from mp.models.base import Model\nfrom mp.models.ridge import Ridge\n",
         "mp/models/base.py": ("class Model:\n    name = 'base'\n\n    @classmethod\n    def create(cls, name):\n"
                               "        for sub in cls.__subclasses__():\n            if sub.name == name:\n"
                               "                return sub()\n        raise KeyError(name)\n\n"
                               "    def fit_predict(self, xs):\n        return [self.transform(x) for x in xs]\n"),
         "mp/models/ridge.py": ("from mp.models.base import Model\n\n\nclass Ridge(Model):\n    name = 'ridge'\n\n"
                                "    def transform(self, x):\n        return x * 2\n"),
         "plugin_train.py": ("from orchestrator import pipeline, step\nfrom mp.models import Model\n\n\n"
                             "@step\ndef train(kind: str) -> list:\n    return Model.create(kind).fit_predict([1, 2, 3])\n\n\n"
                             "@pipeline\ndef plugged(kind: str = 'ridge'):\n    return train(kind)\n")},
        "plugin_train.py", ("mp/models/ridge.py", "x * 2", "x * 3"), "code of `ridge.Ridge.transform` changed"),
    "pandas-accessor": (
        {"dsp/__init__.py": "",
         "dsp/accessors.py": ("import pandas as pd\n\n\n@pd.api.extensions.register_dataframe_accessor('feat')\n"
                              "class FeatAccessor:\n    def __init__(self, df):\n        self._df = df\n\n"
                              "    def add_len(self):\n        return self._df.assign(n=self._df['s'].str.len())\n"),
         "featurize.py": ("import pandas as pd\nimport dsp.accessors  # noqa: F401\n"
                          "from orchestrator import pipeline, step\n\n\n"
                          "@step\ndef load() -> pd.DataFrame:\n    return pd.DataFrame({'s': ['a', 'bb']})\n\n\n"
                          "@step\ndef featurize(df: pd.DataFrame) -> pd.DataFrame:\n    return df.feat.add_len()\n\n\n"
                          "@pipeline\ndef featured():\n    return featurize(load())\n")},
        "featurize.py", ("dsp/accessors.py", "str.len())", "str.len() + 1)"),
        "code of `accessors.FeatAccessor.add_len` changed"),
    "own-module": (
        {"pk/__init__.py": "",
         "pk/feats.py": ("import inspect\nimport sys\n\n\ndef feat_len(s):\n    return len(s)\n\n\n"
                         "def feat_upper(s):\n    return sum(c.isupper() for c in s)\n\n\n"
                         "def all_features(s):\n    found = inspect.getmembers(sys.modules[__name__], inspect.isfunction)\n"
                         "    return {name: fn(s) for name, fn in found if name.startswith('feat_')}\n"),
         "listed.py": ("from orchestrator import pipeline, step\nfrom pk.feats import all_features\n\n\n"
                       "@step\ndef feats(s: str) -> dict:\n    return all_features(s)\n\n\n"
                       "@pipeline\ndef listed(s: str = 'Hello'):\n    return feats(s)\n")},
        "listed.py", ("pk/feats.py", "return len(s)", "return len(s) + 1"),
        "code of `feats.feat_len` changed; code of module `feats` changed"),
}


@pytest.mark.parametrize("case", list(_UNNAMED_CODE))
def test_an_edit_of_code_the_step_finds_at_run_time_reruns_it(orch, project, case):
    """Each left the step cached on the result of the code before the edit."""
    import json

    files, target, (file, old, new), reason = _UNNAMED_CODE[case]
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    run_once_per_session(orch, target)
    edit_file(project, file, old, new)
    [step] = [s for s in json.loads(orch("plan", target, "--json").stdout)["steps"] if s["status"] != "cached"]
    assert (step["status"], step["reason"]) == ("will run", reason)


def test_a_class_both_a_parameters_and_used_by_the_code_is_named_once():
    """A config class the step's code uses too (``Cfg().total()`` beside ``cfg: Cfg``): one edit of
    ``Cfg.total`` read ``code of `config.Cfg.total` changed; code of `pk.config.Cfg.total` changed``."""
    from orchestrator.cache import explain

    def key(n: int, other: str = "o1") -> dict:
        return {"code": f"c{n}", "code_parts": {"<self>": "s", "config.Cfg": f"k{n}"},
                "methods": {"config.Cfg": {"__init__": "i", "total": f"t{n}"}},
                "params": {"cfg": f"p{n}{other}"}, "values": {"cfg": "Cfg(a=1, b=2)"},
                "value_code": {"cfg": {"pk.config.Cfg": {"code": f"x{n}", "methods": {"total": f"t{n}"}},
                                       "pk.other.Opt": {"code": other, "methods": {"decay": other}}}}}

    assert explain(key(1), key(2)) == "code of `config.Cfg.total` changed"
    # Another class of the parameter, which the code does not use: named as ever.
    assert explain(key(1), key(2, "o2")) == ("code of `config.Cfg.total` changed; "
                                             "code of `pk.other.Opt.decay` changed")


def test_an_edit_of_a_config_class_the_code_uses_too_is_named_once(orch, project):
    import json

    (project / "pk").mkdir()
    (project / "pk" / "__init__.py").write_text("")
    (project / "pk" / "config.py").write_text(
        "from dataclasses import dataclass\n\n\n@dataclass(frozen=True)\nclass Cfg:\n    a: int = 1\n    b: int = 2\n\n"
        "    def total(self):\n        return self.a + self.b\n")
    (project / "both_train.py").write_text(
        "from orchestrator import pipeline, step\nfrom pk.config import Cfg\n\n\n"
        "@step\ndef fit(cfg: Cfg) -> int:\n    return cfg.total() + Cfg().total()\n\n\n"
        "@pipeline\ndef both(cfg: Cfg = Cfg()):  # noqa: B008\n    return fit(cfg)\n")
    run_once_per_session(orch, "both_train.py")
    edit_file(project, "pk/config.py", "self.a + self.b", "self.a + self.b + 1")
    [fit] = json.loads(orch("plan", "both_train.py", "--json").stdout)["steps"]
    assert (fit["status"], fit["reason"]) == ("will run", "code of `config.Cfg.total` changed")


def test_an_enums_table_named_by_a_key_recorded_before_is_not_named():
    """Keys recorded before showed ``agg.Agg._value2member_map_`` as a part: it is not 'no longer used'."""
    from orchestrator.cache import explain

    old = {"code": "c1", "code_parts": {"<self>": "s", "agg.Agg": "a1", "agg.Agg._value2member_map_": "v1"}}
    new = {"code": "c2", "code_parts": {"<self>": "s", "agg.Agg": "a2"}}
    assert explain(old, new) == "code of `agg.Agg` changed"
