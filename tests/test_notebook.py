"""A notebook's session: steps and globals defined in cells, runs repeated in one long-lived process.

Cells run here as a notebook runs them: their code executed one after the
other in one module's namespace (IPython is no dependency of the suite), and
the pipeline run again in the same process after each edit.
"""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CELLS = '''
from orchestrator import pipeline, step

CONFIG = {"scale": 2}
_CACHE = {}


def memoised_by(factor):
    memo = {}

    def times(x):
        if x not in memo:
            memo[x] = x * factor
        return memo[x]
    return times


triple, quadruple = memoised_by(3), memoised_by(4)


def square(x):
    if x not in _CACHE:
        _CACHE[x] = x * x
    return _CACHE[x]


@step
def memoised(n: int) -> int:
    return square(n) + 1


@step
def scaled(n: int) -> int:
    return n * CONFIG["scale"]


@step
def factored(n: int) -> int:
    return triple(n) + quadruple(n)


@pipeline
def session(n: int = 3):
    return memoised(n), scaled(n), factored(n)
'''


class Notebook:
    """One kernel: a module whose namespace every cell runs in."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = types.ModuleType(name)
        sys.modules[name] = self.module  # as __main__ is: functions find their module by name
        self.count = 0

    def cell(self, source: str) -> None:
        self.count += 1
        code = compile(textwrap.dedent(source), f"<cell {self.count}>", "exec", dont_inherit=True)
        exec(code, self.module.__dict__)  # noqa: S102 - a cell has no file of its own

    def __getattr__(self, name: str) -> object:
        return getattr(self.module, name)


@pytest.fixture
def kernel() -> Iterator[Callable[[], Notebook]]:
    made: list[Notebook] = []

    def start() -> Notebook:
        notebook = Notebook("nb_session")  # a new kernel runs the same cells under the same name
        made.append(notebook)
        notebook.cell(CELLS)
        return notebook

    yield start
    sys.modules.pop("nb_session", None)


def statuses(run: object) -> dict[str, tuple[str, str]]:
    return {name: (r.status, r.reason) for name, r in run.steps.items()}  # type: ignore[attr-defined]


def test_a_memo_a_helper_fills_while_it_runs_keeps_the_next_run_cached(kernel: Callable[[], Notebook],
                                                                       tmp_path: Path) -> None:
    """The second run of a kernel found ``_CACHE`` full and re-ran ("code of `_CACHE` changed"), while a
    new kernel, where it is empty again, found the step cached: the run's own writes are no edit."""
    store = tmp_path / "store"
    nb = kernel()
    first = nb.session.run(store=store)
    assert first.output() == (10, 6, 21) and nb._CACHE == {3: 9}
    again = nb.session.run(store=store)
    assert statuses(again) == {"memoised": ("cached", "cached"), "scaled": ("cached", "cached"),
                               "factored": ("cached", "cached")}  # two memos of one factory's functions
    assert "will run" not in repr(nb.session.plan(store=store))  # orch plan / p.plan() say so too
    nb.cell("_CACHE = {}")  # the cell that defined it, run again: empty, as at first
    assert statuses(nb.session.run(store=store))["memoised"] == ("cached", "cached")
    fresh = kernel()  # restarted: the memo is empty, the keys are the first run's
    assert {status for status, _ in statuses(fresh.session.run(store=store)).values()} == {"cached"}


def test_a_cell_that_changes_a_global_re_runs_the_steps_reading_it(kernel: Callable[[], Notebook],
                                                                  tmp_path: Path) -> None:
    """``CONFIG["scale"] = 5`` in a cell is an edit of what ``scaled`` reads; so is a cell that writes
    into the memo itself, which a run then fills further."""
    store = tmp_path / "store"
    nb = kernel()
    nb.session.run(store=store)
    nb.session.run(store=store)  # the memo is settled: a cell's change must still count
    nb.cell('CONFIG["scale"] = 5')
    run = nb.session.run(store=store)
    assert statuses(run)["scaled"] == ("ran", "code of `CONFIG` changed")
    assert statuses(run)["memoised"] == ("cached", "cached") and run.output() == (10, 15, 21)
    assert statuses(nb.session.run(store=store))["scaled"] == ("cached", "cached")
    nb.cell("_CACHE[3] = 100")  # a wrong memo put there by hand: its step reads it
    run = nb.session.run(store=store)
    assert statuses(run)["memoised"] == ("ran", "code of `_CACHE` changed")
    assert run.output() == (101, 15, 21)
    nb.cell('CONFIG["scale"] = 2')  # back to the first value: the first result, cached
    assert statuses(nb.session.run(store=store))["scaled"] == ("cached", "cached")


def test_a_step_that_fills_a_list_on_a_worker_changes_nothing_here(kernel: Callable[[], Notebook],
                                                                   tmp_path: Path) -> None:
    """On a process pool each task fills its own copy of the memo: the kernel's stays empty, and cached."""
    store = tmp_path / "store"
    nb = kernel()
    nb.session.run(store=store, executor="process", workers=1)
    assert nb._CACHE == {}
    assert statuses(nb.session.run(store=store))["memoised"] == ("cached", "cached")


CONNECTION_CELLS = '''
import sqlite3

from orchestrator import pipeline, step

_CONNECTIONS = {}


def connection(name):
    if name not in _CONNECTIONS:
        _CONNECTIONS[name] = sqlite3.connect(":memory:")
    return _CONNECTIONS[name]


@step
def query(n: int) -> int:
    return connection("db").execute("select ? * 2", (n,)).fetchone()[0]


@pipeline
def queries(n: int = 3):
    return query(n)
'''


def test_a_memo_of_connections_a_helper_opens_does_not_stop_the_next_run(tmp_path: Path) -> None:
    """The connection made in a function the step calls, as the 'cannot be hashed' advice says, and kept
    in a module-level dict: the kernel's second run was refused ('_CONNECTIONS ... cannot be hashed')."""
    from orchestrator.errors import PipelineDefinitionError

    store = tmp_path / "store"
    nb = Notebook("nb_connections")
    try:
        nb.cell(CONNECTION_CELLS)
        assert nb.queries.run(store=store).output() == 6
        again = nb.queries.run(store=store)
        assert statuses(again) == {"query": ("cached", "cached")} and again.output() == 6
        nb.cell("_CONNECTIONS['other'] = 'text'")  # a cell's change: it cannot be told apart any more
        with pytest.raises(PipelineDefinitionError, match="'_CONNECTIONS' used by 'connection' cannot be hashed"):
            nb.queries.run(store=store)
        nb.cell("_CONNECTIONS = {}")
        assert statuses(nb.queries.run(store=store)) == {"query": ("cached", "cached")}
    finally:
        sys.modules.pop("nb_connections", None)


AUTORELOAD_SESSION = '''
import os, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()


def cell(source):
    result = shell.run_cell(source)
    if not result.success:
        raise SystemExit(f"cell failed: {source}")


def edit(old, new):
    text = open("flows.py").read()
    with open("flows.py", "w") as f:
        f.write(text.replace(old, new))
    later = os.stat("flows.py").st_mtime + 5  # autoreload compares modification times
    os.utime("flows.py", (later, later))


cell("%load_ext autoreload")
cell("%autoreload 2")
cell("from flows import total, training")
cell("print('run', training.run(store='store').output())")
edit("return sum(xs)", "return sum(xs) * 10")
cell("print('step', total([1, 2]))")
edit("total(load(n))", "total(load(n + 1))")
cell("run = training.run(store='store'); print('run', run.output(), run.steps['total'].reason)")
'''

FLOWS = '''
from orchestrator import pipeline, step


@step
def load(n: int) -> list:
    return list(range(n))


@step
def total(xs: list) -> int:
    return sum(xs)


@pipeline
def training(n: int = 3):
    return total(load(n))
'''


def test_autoreload_upgrades_a_step_and_a_pipeline_imported_by_name(tmp_path: Path) -> None:
    """%autoreload 2 upgrades what a notebook imported from an edited module, functions in place; a step
    and a pipeline imported by name kept their old code: the run used the old body, without a word."""
    pytest.importorskip("IPython.extensions.autoreload")
    import os
    import subprocess

    (tmp_path / "flows.py").write_text(FLOWS)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path)])}
    done = subprocess.run([sys.executable, "-c", AUTORELOAD_SESSION], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith(("run", "step"))]
    assert lines == ["run 3", "step 30", "run 60 its code changed; input `xs` changed"], done.stdout


CLASS_CELLS = """
from dataclasses import dataclass

from orchestrator import pipeline, step


@dataclass
class Config:
    lr: float = 0.1


class Scaler:
    FACTOR = 2

    def apply(self, x):
        return x * self.FACTOR


@step
def fit(n: int) -> float:
    return n * Config().lr + Scaler().apply(1)


@pipeline
def classes(n: int = 1):
    return fit(n)
"""


def test_a_class_redefined_in_a_cell_with_another_attribute_re_runs_its_steps(tmp_path: Path) -> None:
    """A class defined in a notebook has no source Python can read: it counted by its methods' bytecode,
    so `lr = 0.5` or `FACTOR = 50` in a cell run again left the step cached on the old result."""
    store = tmp_path / "store"
    nb = Notebook("nb_classes")
    try:
        nb.cell(CLASS_CELLS)
        assert nb.classes.run(store=store).output() == 2.1
        assert statuses(nb.classes.run(store=store))["fit"] == ("cached", "cached")
        nb.cell(CLASS_CELLS.replace("lr: float = 0.1", "lr: float = 0.5"))
        run = nb.classes.run(store=store)
        assert run.steps["fit"].status == "ran" and "Config.lr" in run.steps["fit"].reason
        assert run.output() == 2.5
        nb.cell(CLASS_CELLS.replace("lr: float = 0.1", "lr: float = 0.5").replace("FACTOR = 2", "FACTOR = 50"))
        run = nb.classes.run(store=store)
        assert run.steps["fit"].status == "ran" and "Scaler.FACTOR" in run.steps["fit"].reason
        assert run.output() == 50.5
        nb.cell("Scaler.FACTOR = 2")  # set on the class in a cell
        assert nb.classes.run(store=store).output() == 2.5
    finally:
        sys.modules.pop("nb_classes", None)


def test_a_step_sharing_its_cell_with_an_import_is_keyed_as_the_same_code_in_a_file(tmp_path: Path) -> None:
    """IPython compiles a cell one statement at a time, and Python 3.11 compiles `math.log1p(x)` otherwise
    when the `import math` is not in the same compilation: the source looked stale, the step counted by its
    bytecode, and a re-run of the same cell (or `orch run` of the same code) re-ran it: "its code changed"."""
    import ast
    import importlib
    import linecache

    from orchestrator.fingerprint import fingerprint

    cell = "import math\nfrom orchestrator import step\n\n\n@step\ndef logged(x: float) -> float:\n    return math.log1p(x)\n"
    name = str(tmp_path / "ipykernel_1" / "cell_1.py")  # as ipykernel names a cell, its text in linecache
    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)
    module = types.ModuleType("nb_import_cell")
    sys.modules["nb_import_cell"] = module
    (tmp_path / "as_file.py").write_text(cell)
    sys.path.insert(0, str(tmp_path))
    try:
        for statement in ast.parse(cell).body:
            exec(compile(ast.Module([statement], type_ignores=[]), name, "exec", dont_inherit=True),  # noqa: S102
                 module.__dict__)
        in_a_file = importlib.import_module("as_file")
        assert fingerprint(module.logged).digest == fingerprint(in_a_file.logged).digest
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("nb_import_cell", None)
        sys.modules.pop("as_file", None)
        linecache.cache.pop(name, None)


STATEFUL_CLASSES = """
from orchestrator import pipeline, step


class Loader:
    _model = None
    calls = 0
    seen = {}

    @classmethod
    def get(cls, n):
        cls.calls += 1
        cls.seen[n] = True
        if cls._model is None:
            cls._model = object()
        return n * 2


@step
def predict(n: int) -> int:
    return Loader.get(n)


@pipeline
def stateful(n: int = 3):
    return predict(n)
"""


@pytest.mark.parametrize("where", ["file", "cell"])
def test_class_state_a_run_changes_keeps_the_next_run_in_the_process_cached(tmp_path: Path, where: str) -> None:
    """A counter a method increments, a memo it fills, a lazy `_model`: the run's own doing, no edit (the
    second run in the process re-ran, 'now uses `Loader.calls`'); a cell that sets one is an edit."""
    import importlib

    store = tmp_path / "store"
    if where == "file":
        (tmp_path / "stateful_mod.py").write_text(STATEFUL_CLASSES)
        sys.path.insert(0, str(tmp_path))
        module: Any = importlib.import_module("stateful_mod")
    else:
        module = Notebook("nb_stateful")
        module.cell(STATEFUL_CLASSES)
    try:
        assert module.stateful.run(store=store).steps["predict"].status == "ran"
        for _ in range(2):
            assert statuses(module.stateful.run(store=store))["predict"] == ("cached", "cached")
        module.Loader.calls = 100  # set by hand between runs: an edit of what the step reads
        assert module.stateful.run(store=store).steps["predict"].status == "ran"
    finally:
        sys.modules.pop("stateful_mod", None)
        sys.modules.pop("nb_stateful", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def _session(source: str, tmp_path: Path, *args: str) -> str:
    """Run ``source`` as a kernel runs its cells (``__main__``, no file) in a new interpreter, in ``tmp_path``
    with its store there (``ORCH_STORE``); its stdout, after checking it exited 0."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "ORCH_STORE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", source, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


CELL_CLASSES = '''
import dataclasses, enum, sys
from orchestrator import pipeline, step


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass
class Cfg:
    lr: float = 0.1


@step
def pick() -> Color:
    return Color.RED


@step
def config() -> Cfg:
    return Cfg()


@step
def checks(c: Color, cfg: Cfg) -> list:
    return [c is Color.RED, isinstance(cfg, Cfg), cfg == Cfg()]  # EDIT


@pipeline
def cells():
    return checks(pick(), config())


run = cells.run(store=sys.argv[1])
print({name: r.status for name, r in run.steps.items()}, run.output(),
      [run.steps["pick"].output() is Color.RED, isinstance(run.steps["config"].output(), Cfg)])
'''


def test_classes_of_cells_load_as_the_kernels_own_after_a_restart(tmp_path: Path) -> None:
    """A class defined in a cell (``__main__`` has no file in a kernel) loaded from the cache as a copy of
    itself: after a restart `is Color.RED` and `isinstance` were False, in the notebook and in a step that
    re-ran on the cached output, whose wrong result was then stored under a valid key."""
    def kernel(source: str) -> str:
        return _session(source, tmp_path, str(tmp_path / "store")).strip()

    every = "[True, True, True] [True, True]"
    assert kernel(CELL_CLASSES) == "{'pick': 'ran', 'config': 'ran', 'checks': 'ran'} " + every
    assert kernel(CELL_CLASSES) == "{'pick': 'cached', 'config': 'cached', 'checks': 'cached'} " + every
    edited = CELL_CLASSES.replace("  # EDIT", "  # edited\n    # the same checks")
    edited = edited.replace("return [c is", "same = [c is").replace("# edited", "\n    return same")
    assert kernel(edited) == "{'pick': 'cached', 'config': 'cached', 'checks': 'ran'} " + every
    # The class cell run again in one kernel: the cached outputs are of the class the cell made last.
    again = CELL_CLASSES.replace("run = cells.run", "exec(compile(CLASS_CELL, '<cell>', 'exec'))\nrun = cells.run")
    again = "CLASS_CELL = " + repr(CELL_CLASSES.split("@step")[0]) + "\n" + again
    assert kernel(again) == "{'pick': 'cached', 'config': 'cached', 'checks': 'cached'} " + every


MAGIC_SESSION = '''
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
shell.history_manager.enabled = False  # kept in memory: no history file written


def cell(source):
    result = shell.run_cell(source, store_history=True)
    if not result.success:
        raise SystemExit(f"cell failed: {source}")


STEP = "from orchestrator import pipeline, step\\n@step\\ndef b(n: int) -> int:\\n    return n * 2\\n"
PIPELINE = "@pipeline\\ndef p(n: int = 3):\\n    return b(n)\\n"
cell(STEP)
cell(PIPELINE)
cell("print('plain', p.plan().steps['b'].key)")
for magic in ("%%time", "%%prun -q"):
    cell(magic + "\\n" + STEP)
    cell(PIPELINE)
    cell("print(" + repr(magic) + ", p.plan().steps['b'].key)")
'''


def test_a_step_in_a_cell_under_time_or_prun_keeps_its_key(tmp_path: Path) -> None:
    """`%%time` compiles the cell as `<timed exec>`, which has no source to read back: the step counted by its
    bytecode, so adding or taking off `%%time` re-ran it ("its code changed"), and its key was not `orch run`'s."""
    pytest.importorskip("IPython")
    printed = _session(MAGIC_SESSION, tmp_path)
    lines = [line.strip() for line in printed.splitlines()]  # prun's report leaves no line end
    keys = dict(line.rsplit(" ", 1) for line in lines if line.startswith(("plain", "%%")))
    assert set(keys) == {"plain", "%%time", "%%prun -q"}, printed
    assert len(set(keys.values())) == 1, keys


DISPLAY_SESSION = '''
import sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()


class PagePublisher:  # as a kernel's: display() becomes a message to the page, not text on sys.stdout
    def __init__(self):
        self.page = []

    def publish(self, data, metadata=None, **kwargs):
        self.page.append(data["text/plain"])

    def clear_output(self, wait=False):
        self.page.append("<cleared>")


shell.display_pub = page = PagePublisher()
from IPython.display import clear_output, display
from orchestrator import pipeline, step


@step
def shows(n: int) -> int:
    display({"rows": n})
    clear_output()
    print("printed")
    return n


@pipeline
def p(n: int = 3):
    return shows(n)


quiet = p.run(store=sys.argv[1])
print("quiet", page.page, repr(quiet.steps["shows"].stdout))
loud = p.run(store=sys.argv[1], n=4, verbose=True)
print("verbose", page.page, repr(loud.steps["shows"].stdout))
'''


def test_what_a_step_displays_in_a_kernel_is_kept_as_its_stdout(tmp_path: Path) -> None:
    """A kernel sends display()'s output to the page as a message: it was shown while the step ran, in a run
    that shows nothing, and missing from the step's stdout (`orch logs`, the same step cached)."""
    pytest.importorskip("IPython")
    printed = _session(DISPLAY_SESSION, tmp_path, str(tmp_path / "store"))
    lines = [line for line in printed.splitlines() if line.startswith(("quiet", "verbose"))]
    assert lines == ["quiet [] \"{'rows': 3}\\nprinted\\n\"",
                     "verbose [\"{'rows': 4}\", '<cleared>'] \"{'rows': 4}\\nprinted\\n\""], printed


CELL_SITE_SESSION = '''
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
shell.history_manager.enabled = False


def cell(source):
    return shell.run_cell(source, store_history=True)


cell("from orchestrator import pipeline, step")
cell("@step\\ndef load() -> dict:\\n    return {}\\n\\n@step\\ndef total(x) -> int:\\n    return 1\\n")
cell("@pipeline\\ndef p():\\n    raw = load()\\n    return total(len(raw))\\n")
cell("""
try:
    p.plan()
except Exception as exc:
    print("error", exc)
""")
'''


def test_a_mistake_in_a_cell_is_named_by_the_cell_not_its_temporary_file(tmp_path: Path) -> None:
    """A kernel compiles each cell into a temporary file (`/tmp/ipykernel_1/3359560853.py`): messages said
    `at 3359560853.py:4`, which names no cell; IPython's tracebacks say `In[3]`."""
    pytest.importorskip("IPython")
    printed = _session(CELL_SITE_SESSION, tmp_path)
    assert "has its len() taken at In[3]:4 while the pipeline is being built" in printed, printed


REDEFINED_SESSION = '''
import dataclasses, enum, sys
import orchestrator
from orchestrator import pipeline, step

if sys.argv[2] == "first":
    class Color(enum.Enum):
        RED = 1
        GREEN = 2

    @dataclasses.dataclass(slots=True)
    class Pair:
        a: int
        b: int

    class Base:
        __slots__ = ("x",)
else:  # the cells edited after a restart: other members, other fields
    class Color(enum.Enum):
        RED = 1
        BLUE = 3

    @dataclasses.dataclass(slots=True)
    class Pair:
        a: int
        c: int = 5

    class Base:
        __slots__ = ("y",)


class Child(Base):  # unchanged itself: its base's slot was renamed
    __slots__ = ("z",)

    def __init__(self):
        self.z = 2


@step
def make() -> tuple:
    child = Child()
    setattr(child, "x" if sys.argv[2] == "first" else "y", 1)
    return Color.GREEN if sys.argv[2] == "first" else Color.BLUE, Pair(1, 2), child


@pipeline
def made():
    return make()


if sys.argv[2] == "first":
    print(made.run(store=sys.argv[1]).id)
else:
    color, pair, child = orchestrator.load(sys.argv[3] + ":make", store=sys.argv[1])
    print(color.name, color.value, isinstance(color, Color), pair.a, pair.b, isinstance(pair, Pair),
          child.x, child.z, isinstance(child, Child))
'''


def test_an_output_of_a_cell_class_redefined_since_loads_as_it_was_stored(tmp_path: Path) -> None:
    """A class of a cell now loads as the kernel's class of that name: one redefined since with other members
    or fields made the earlier run's output unloadable (`2 is not a valid Color`, "a bug of orchestrator")
    or quietly another value. Such an output loads as a copy of the class it was stored with, as before."""
    def kernel(*args: str) -> str:
        return _session(REDEFINED_SESSION, tmp_path, str(tmp_path / "store"), *args).strip()

    run_id = kernel("first")
    assert kernel("edited", run_id) == "GREEN 2 False 1 2 False 1 2 False"
