"""Edits a data scientist makes to a project's code, and the steps whose fingerprints they change.

Each case edits one template module, imports it fresh (``Loader``), and
checks that the digest changes exactly when the code a step runs changed,
and that the part a reason is made from names what was edited.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.fingerprint import CodeFingerprint, fingerprint
from tests.test_fingerprint import Loader, changed_parts


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Loader]:
    loader = Loader(tmp_path)
    yield loader
    loader.close()

DECO = '''
import functools


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper
'''

HELPERS = '''
import collections
import functools
import os
import threading

from fpe_deco import logged


class Cfg:
    LR = 0.1
    MODE = os.environ.get("FPE_MODE", "plain")
    WORKERS: int = int(os.environ.get("FPE_WORKERS", "2"))
    GUARD = threading.Lock()
    SEEN = dict()
    BY_KEY = collections.defaultdict(list)
    STREAM = (n for n in [1, 2])


def scale(x, k=2):
    return x * k


SCALE_BY_3 = functools.partial(scale, k=3)


@logged
def decorated(x):
    return x + 7


def negate(x):
    return -x


def make_scaler(k):
    def scale(x):
        return x * k
    return scale


SCALE4 = make_scaler(4)


@functools.singledispatch
def describe(x):
    return "thing"


@describe.register
def _(x: int):
    return "int"


def unused(x):
    return x - 5
'''

STEPS = '''
import fpe_helpers


def by_name(x, name="negate"):
    return getattr(fpe_helpers, name)(x)


def local_negate(x):
    return -x


def by_globals(x, name="local_negate"):
    return globals()[name](x)


def factory_made(x):
    return fpe_helpers.SCALE4(x)


def configured(x):
    return f"{fpe_helpers.Cfg.MODE}:{x * fpe_helpers.Cfg.LR}"


def dispatched(x):
    return fpe_helpers.describe(x)
'''

MODULES = {"fpe_deco.py": DECO, "fpe_helpers.py": HELPERS, "fpe_steps.py": STEPS}


def fp(load: Loader, files: dict[str, str], name: str) -> CodeFingerprint:
    return fingerprint(getattr(load(files, "fpe_steps"), name))


def edit(file: str, old: str, new: str) -> dict[str, str]:
    files = dict(MODULES)
    assert files[file].count(old) == 1, f"{file} has no single {old!r}"
    files[file] = files[file].replace(old, new)
    return files


def test_a_module_used_whole_counts_its_constants_beside_a_decorated_function(load: Loader) -> None:
    """``getattr(helpers, name)`` counts the whole module, a decorator from another module or not.

    The wrapper ``functools.wraps`` makes has its code in the decorator's file:
    taken for the module's own code, it made the module's source look stale, and
    the digest fell back to the functions' bytecode, without the module's
    constants (``partial(scale, k=3)`` edited to ``k=4`` left the step cached).
    """
    before = fp(load, MODULES, "by_name")
    after = fp(load, edit("fpe_helpers.py", "partial(scale, k=3)", "partial(scale, k=4)"), "by_name")
    assert before.digest != after.digest
    assert changed_parts(before, after) == {"module fpe_helpers"}


def test_reordering_a_module_used_whole_keeps_its_digest(load: Loader) -> None:
    """Moving a function down a file changes no code; its source digest is the module's then."""
    plain = edit("fpe_helpers.py", "@logged\n", "")
    before = fp(load, plain, "by_name")
    moved = dict(plain)
    moved["fpe_helpers.py"] = moved["fpe_helpers.py"].replace("def unused(x):\n    return x - 5\n", "")
    moved["fpe_helpers.py"] = moved["fpe_helpers.py"].replace(
        "def scale(x, k=2):", "def unused(x):\n    return x - 5\n\n\ndef scale(x, k=2):")
    assert fp(load, moved, "by_name").digest == before.digest


def test_a_module_used_whole_keeps_the_order_of_its_other_statements(load: Loader) -> None:
    """``X = 1`` then ``X = 2`` binds another value than the other way round."""
    files = edit("fpe_helpers.py", "def negate(x):", "LIMIT = 1\nLIMIT = 2\n\n\ndef negate(x):")
    swapped = edit("fpe_helpers.py", "def negate(x):", "LIMIT = 2\nLIMIT = 1\n\n\ndef negate(x):")
    assert fp(load, files, "by_name").digest != fp(load, swapped, "by_name").digest


def test_a_lambda_of_a_module_used_whole_is_named_by_its_global_name(load: Loader) -> None:
    files = edit("fpe_helpers.py", "def negate(x):", "square = lambda x: x * x\n\n\ndef negate(x):")
    before = fp(load, files, "by_name")
    after = fp(load, {**files, "fpe_helpers.py": files["fpe_helpers.py"].replace("x * x", "x * x * 1")}, "by_name")
    assert "fpe_helpers.square" in changed_parts(before, after)


def test_an_implementation_registered_with_singledispatch_counts(load: Loader) -> None:
    """``describe(3)`` runs ``_(x: int)``, which no name in the step reads: editing it re-ran nothing."""
    before = fp(load, MODULES, "dispatched")
    after = fp(load, edit("fpe_helpers.py", 'return "int"', 'return "integer"'), "dispatched")
    assert changed_parts(before, after) == {"fpe_helpers.describe.register(int)"}
    retyped = fp(load, edit("fpe_helpers.py", "def _(x: int):", "def _(x: float):"), "dispatched")
    assert {"fpe_helpers.describe.register", "fpe_helpers.describe.register(float)"} <= \
        changed_parts(before, retyped)


def test_an_edit_elsewhere_leaves_a_singledispatch_step_alone(load: Loader) -> None:
    before = fp(load, MODULES, "dispatched")
    assert fp(load, edit("fpe_helpers.py", "return x - 5", "return x - 6"), "dispatched").digest == before.digest


def test_a_class_attribute_computed_at_import_counts_by_its_value(load: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    """``MODE = os.environ.get(...)`` in a class body: the source is the same, the value is not."""
    before = fp(load, MODULES, "configured")
    monkeypatch.setenv("FPE_MODE", "fancy")
    after = fp(load, MODULES, "configured")
    assert changed_parts(before, after) == {"fpe_helpers.Cfg.MODE"}
    monkeypatch.setenv("FPE_WORKERS", "8")
    assert changed_parts(after, fp(load, MODULES, "configured")) == {"fpe_helpers.Cfg.WORKERS"}


def test_a_cache_a_class_fills_keeps_the_key_while_it_fills(load: Loader) -> None:
    """``SEEN = dict()`` made empty: what the class puts in it later is no edit of the code (a notebook
    re-runs in one process, where the second run would see a filled cache and a new key)."""
    module = load(MODULES, "fpe_steps")
    before = fingerprint(module.configured)
    module.fpe_helpers.Cfg.SEEN["x"] = 1
    module.fpe_helpers.Cfg.BY_KEY["y"].append(2)
    assert fingerprint(module.configured).digest == before.digest


def test_a_literal_class_attribute_counts_by_the_source_alone(load: Loader) -> None:
    """``LR = 0.1`` is in the class's source: no part of its own; an attribute that cannot be hashed
    (a lock, a generator) leaves the class counted by its source, as before, without an error."""
    before = fp(load, MODULES, "configured")
    assert not {"fpe_helpers.Cfg.LR", "fpe_helpers.Cfg.STREAM", "fpe_helpers.Cfg.GUARD"} & set(before.parts)
    after = fp(load, edit("fpe_helpers.py", "LR = 0.1", "LR = 0.2"), "configured")
    assert changed_parts(before, after) == {"fpe_helpers.Cfg"}


def test_a_step_that_picks_a_function_from_globals_counts_its_module(load: Loader) -> None:
    """``globals()[name](x)`` names no function: the step's whole module counts, as ``getattr`` on a module does."""
    before = fp(load, MODULES, "by_globals")
    after = fp(load, edit("fpe_steps.py", "    return -x\n", "    return -x - 1\n"), "by_globals")
    assert {"local_negate", "module fpe_steps"} <= changed_parts(before, after)


CLASSES = '''
import fpe_settings


class Tuned:
    lr = fpe_settings.SCALE * 0.1

    def step(self, x):
        return x * self.lr


class Scaler:
    factor = 2

    def fit(self, xs):
        return [x * self.factor for x in xs]

    def describe(self):
        return "scaler"


class Bound:
    def first(self):
        return 1

    def first(self):  # noqa: F811 - the later one wins
        return 2
'''

USES_CLASSES = '''
import fpe_classes


def tuned(x):
    return fpe_classes.Tuned().step(x)


def scaled(xs):
    return fpe_classes.Scaler().fit(xs)


def bound():
    return fpe_classes.Bound().first()
'''


def test_moving_a_method_up_or_down_its_class_keeps_the_digest(load: Loader) -> None:
    files = {"fpe_settings.py": "SCALE = 2\n", "fpe_classes.py": CLASSES, "fpe_steps.py": USES_CLASSES}
    before = fingerprint(load(files, "fpe_steps").scaled)
    moved = CLASSES.replace('''    def describe(self):
        return "scaler"
''', "").replace("    factor = 2\n", '''    factor = 2

    def describe(self):
        return "scaler"
''')
    assert fingerprint(load({**files, "fpe_classes.py": moved}, "fpe_steps").scaled).digest == before.digest
    edited = CLASSES.replace("x * self.factor", "x + self.factor")
    assert fingerprint(load({**files, "fpe_classes.py": edited}, "fpe_steps").scaled).digest != before.digest


def test_a_name_defined_twice_keeps_the_order_that_says_which_one_wins(load: Loader) -> None:
    files = {"fpe_settings.py": "SCALE = 2\n", "fpe_classes.py": CLASSES, "fpe_steps.py": USES_CLASSES}
    before = fingerprint(load(files, "fpe_steps").bound)
    swapped = CLASSES.replace("return 1", "return @").replace("return 2", "return 1").replace("return @", "return 2")
    assert fingerprint(load({**files, "fpe_classes.py": swapped}, "fpe_steps").bound).digest != before.digest


def test_a_function_a_factory_made_is_named_by_the_constant_that_holds_it(load: Loader) -> None:
    """``SCALE4 = make_scaler(4)`` edited to 5: the reason names SCALE4, not ``make_scaler.<locals>.scale``."""
    before = fp(load, MODULES, "factory_made")
    after = fp(load, edit("fpe_helpers.py", "make_scaler(4)", "make_scaler(5)"), "factory_made")
    assert changed_parts(before, after) == {"fpe_helpers.SCALE4"}


def test_a_module_used_whole_is_not_parsed_again_while_it_is_unchanged(load: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every build fingerprints its steps: a module used whole is read once while its source stays the same."""
    from orchestrator import code_analysis

    module = load(MODULES, "fpe_steps")
    first = fingerprint(module.by_name)
    parsed: list[object] = []
    real = code_analysis._module_statements
    monkeypatch.setattr(code_analysis, "_module_statements", lambda tree: parsed.append(tree) or real(tree))
    for _ in range(3):
        assert fingerprint(module.by_name).digest == first.digest
    assert parsed == []


def test_a_class_body_reading_a_module_constant_counts_that_constant_not_the_module(load: Loader) -> None:
    """``lr = config.SCALE * 0.1`` in a class body: editing another setting of ``config`` re-ran the steps
    using the class (the body's ``config`` counted the whole module)."""
    settings = "SCALE = 2\nOFFSET = 10\n"
    files = {"fpe_settings.py": settings, "fpe_classes.py": CLASSES, "fpe_steps.py": USES_CLASSES}
    before = fingerprint(load(files, "fpe_steps").tuned)
    other = {**files, "fpe_settings.py": settings.replace("OFFSET = 10", "OFFSET = 11")}
    assert fingerprint(load(other, "fpe_steps").tuned).digest == before.digest
    used = {**files, "fpe_settings.py": settings.replace("SCALE = 2", "SCALE = 3")}
    assert "fpe_settings.SCALE" in changed_parts(before, fingerprint(load(used, "fpe_steps").tuned))


# -- which name holds which code: swaps between names, positions and keys ---------------------

SWAP_CONFIGS = {
    "fps_conf/__init__.py": "",
    "fps_conf/train.py": "BATCH = 32\n",
    "fps_conf/evaluate.py": "BATCH = 64\n",
    "fps_scalers.py": '''
        def make_scaler(k):
            def scale(x):
                return x * k
            return scale


        LOW = make_scaler(2)
        HIGH = make_scaler(10)
        ''',
    "fps_pa/__init__.py": "",
    "fps_pa/utils.py": "def clean(x):\n    return x + 1\n",
    "fps_pb/__init__.py": "",
    "fps_pb/utils.py": "def clean(x):\n    return x * 2\n",
    "fps_tables.py": '''
        TRANSFORMS = [lambda x: x + 1, lambda x: x * 2]
        AGG = {"mean": lambda xs: sum(xs) / len(xs), "max": lambda xs: max(xs)}
        ''',
    "fps_steps.py": '''
        from fps_conf import evaluate, train
        from fps_pa.utils import clean as first
        from fps_pb.utils import clean as second
        from fps_scalers import HIGH, LOW
        from fps_tables import AGG, TRANSFORMS


        def batches(n):
            return n // train.BATCH, n // evaluate.BATCH


        def score(x):
            return LOW(x) - HIGH(x)


        def cleaned(x):
            return second(first(x))


        def transform(x):
            for f in TRANSFORMS:
                x = f(x)
            return x


        def summarize(xs):
            return AGG["mean"](xs)
        ''',
}


def _swapped(files: dict[str, str], path: str, a: str, b: str) -> dict[str, str]:
    text = textwrap.dedent(files[path]).replace(a, "\0").replace(b, a).replace("\0", b)
    return {**files, path: text}


def _values_moved_between_modules(files: dict[str, str]) -> dict[str, str]:
    return {**files, "fps_conf/train.py": "BATCH = 64\n", "fps_conf/evaluate.py": "BATCH = 32\n"}


@pytest.mark.parametrize(("step", "edit"), [
    ("batches", _values_moved_between_modules),  # one name in two modules: their values swapped
    ("score", lambda f: _swapped(f, "fps_scalers.py", "make_scaler(2)", "make_scaler(10)")),  # one factory's functions
    ("cleaned", lambda f: _swapped(f, "fps_steps.py", "import clean as first", "import clean as second")),
    ("transform", lambda f: _swapped(f, "fps_tables.py", "lambda x: x + 1", "lambda x: x * 2")),  # a list reordered
    ("summarize", lambda f: _swapped(f, "fps_tables.py", "lambda xs: sum(xs) / len(xs)", "lambda xs: max(xs)")),
])
def test_swapping_which_name_holds_which_code_or_value_changes_the_digest(
        load: Loader, step: str, edit: Callable[[dict[str, str]], dict[str, str]]) -> None:
    """The same parts under other names give other results: the key must see which is where.

    Each swap below changed a step's result while its fingerprint stayed the
    same (the parts were keyed by their bare names, `BATCH`, `<lambda>`).
    """
    before = fingerprint(getattr(load(SWAP_CONFIGS, "fps_steps"), step))
    after = fingerprint(getattr(load(edit(SWAP_CONFIGS), "fps_steps"), step))
    assert after.digest != before.digest
    assert changed_parts(before, after), "a changed key must name what changed"


def test_reordering_the_entries_of_a_table_of_code_without_changing_them_keeps_the_digest(load: Loader) -> None:
    """A dict literal written in another order holds the same code under the same keys."""
    before = fingerprint(load(SWAP_CONFIGS, "fps_steps").summarize)
    text = SWAP_CONFIGS["fps_tables.py"].replace(
        '{"mean": lambda xs: sum(xs) / len(xs), "max": lambda xs: max(xs)}',
        '{"max": lambda xs: max(xs), "mean": lambda xs: sum(xs) / len(xs)}')
    assert fingerprint(load({**SWAP_CONFIGS, "fps_tables.py": text}, "fps_steps").summarize).digest == before.digest


LITERAL_CLASS = {
    "fpl_cfg.py": '''
        class Cfg:
            K = 1
            NAME = "base"

            def twice(self, x):
                return 2 * x
        ''',
    "fpl_steps.py": '''
        from fpl_cfg import Cfg


        def add(n):
            return n + Cfg.K
        ''',
}


def test_a_literal_class_attribute_set_to_another_value_counts_by_that_value(load: Loader) -> None:
    """`Cfg.K = 7` in a notebook cell or a script: the class's source still says `K = 1`, by which it counted."""
    module = load(LITERAL_CLASS, "fpl_steps")
    before = fingerprint(module.add)
    module.Cfg.K = 7
    after = fingerprint(module.add)
    assert after.digest != before.digest and "fpl_cfg.Cfg.K" in changed_parts(before, after)
    module.Cfg.K = 1
    assert fingerprint(module.add).digest == before.digest


def test_a_class_edited_on_disk_after_its_import_does_not_pass_for_the_edited_one(load: Loader) -> None:
    """A process that imported `K = 1` and then saw the file say `K = 7` keyed its result (computed with 1)
    by the new source: a fresh process with `K = 7` found that key and reused the wrong result."""
    module = load(LITERAL_CLASS, "fpl_steps")
    edited = textwrap.dedent(LITERAL_CLASS["fpl_cfg.py"]).lstrip().replace("K = 1", "K = 7")
    Path(module.__file__).parent.joinpath("fpl_cfg.py").write_text(edited)
    stale = fingerprint(module.add)  # the class in memory still holds K = 1
    fresh = fingerprint(load({**LITERAL_CLASS, "fpl_cfg.py": edited}, "fpl_steps").add)
    assert stale.digest != fresh.digest


def test_a_helper_named_as_one_in_another_module_is_named_by_its_module_path(load: Loader) -> None:
    """`clean` of fps_pa.utils and of fps_pb.utils: an edit of the second read ``code of `utils.clean #1`
    changed``, which names neither file."""
    before = fingerprint(load(SWAP_CONFIGS, "fps_steps").cleaned)
    edited = {**SWAP_CONFIGS, "fps_pb/utils.py": "def clean(x):\n    return x * 3\n"}
    after = fingerprint(load(edited, "fps_steps").cleaned)
    assert changed_parts(before, after) == {"fps_pb.utils.clean"}


SELF_LISTING = {
    "fpe_feats.py": '''
import importlib
import inspect
import logging
import sys


def feat_len(s):
    return len(s)


def feat_upper(s):
    return sum(c.isupper() for c in s)


def by_sys_modules(s):
    found = inspect.getmembers(sys.modules[__name__], inspect.isfunction)
    return {name: fn(s) for name, fn in found if name.startswith("feat_")}


def by_get(s):
    module = sys.modules.get(__name__)
    return {name: getattr(module, name)(s) for name in dir(module) if name.startswith("feat_")}


def by_import(s):
    module = importlib.import_module(__name__)
    return {name: getattr(module, name)(s) for name in dir(module) if name.startswith("feat_")}


def logged(s):
    logging.getLogger(__name__).info("%s", sys.modules["os"].sep)
    return s
''',
    "fpe_listing.py": '''
import fpe_feats


def by_sys_modules(s):
    return fpe_feats.by_sys_modules(s)


def by_get(s):
    return fpe_feats.by_get(s)


def by_import(s):
    return fpe_feats.by_import(s)


def logged(s):
    return fpe_feats.logged(s)
''',
}


@pytest.mark.parametrize("name", ["by_sys_modules", "by_get", "by_import"])
def test_a_helper_that_lists_its_own_module_counts_that_module(load: Loader, name: str) -> None:
    """``inspect.getmembers(sys.modules[__name__], inspect.isfunction)`` to collect the ``feat_*``
    functions names none of them: editing ``feat_len`` kept the step cached. It is ``globals()``."""
    def used(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(getattr(load(files, "fpe_listing"), name))

    before = used(SELF_LISTING)
    after = used({**SELF_LISTING, "fpe_feats.py": SELF_LISTING["fpe_feats.py"].replace("return len(s)", "return len(s) + 1")})
    assert {"fpe_feats.feat_len", "module fpe_feats"} <= changed_parts(before, after)
    assert after.dynamic == ()  # importlib.import_module(__name__) imports no module named at run time


def test_a_helper_reading_its_module_name_for_a_logger_leaves_the_module_out(load: Loader) -> None:
    """``logging.getLogger(__name__)`` beside ``sys.modules["os"]``: no module of yours is looked up."""
    def used(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(load(files, "fpe_listing").logged)

    before = used(SELF_LISTING)
    after = used({**SELF_LISTING, "fpe_feats.py": SELF_LISTING["fpe_feats.py"].replace("return len(s)", "return len(s) + 1")})
    assert before.digest == after.digest


CODE_ENUM = {
    "fpe_agg.py": '''
import enum
import functools


def total(xs, scale=1):
    return sum(xs) * scale


class Agg(enum.Enum):
    SUM = functools.partial(total, scale=1)
    DOUBLE = functools.partial(total, scale=2)

    def __call__(self, xs):
        return self.value(xs)
''',
    "fpe_aggsteps.py": '''
from fpe_agg import Agg


def agg(xs):
    return Agg.DOUBLE(xs)
''',
}


@pytest.mark.parametrize("old,new,part", [
    ("scale=2)", "scale=3)", "fpe_agg.Agg"),
    ("sum(xs) * scale", "sum(xs) * scale + 1", "fpe_agg.total"),
])
def test_an_enum_of_functions_is_explained_by_its_own_parts_not_enums_tables(
        load: Loader, old: str, new: str, part: str) -> None:
    """Members that are ``functools.partial``s: ``Enum.__new__``, copied into the class, reads its
    ``_value2member_map_``, which holds them, so an edit read ``code of `agg.Agg` changed; code of
    `agg.Agg._value2member_map_` changed``: enum's own bookkeeping, shown as the user's code."""
    def used(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(load(files, "fpe_aggsteps").agg)

    before = used(CODE_ENUM)
    after = used({**CODE_ENUM, "fpe_agg.py": CODE_ENUM["fpe_agg.py"].replace(old, new)})
    assert before.digest != after.digest
    assert changed_parts(before, after) == {part}
    assert not [name for name in before.parts if "_value2member_map_" in name]


FACTORY_UTILS = '''
def make_adder(k):
    def add(x):
        return x + k
    return add
'''

FACTORY_OPS = '''
from fpa_utils import make_adder

add2 = make_adder(2)
for n in (5, 6):
    globals()[f"add{n}"] = make_adder(n)
'''

FACTORY_STEPS = '''
from fpa_ops import add2
import fpa_ops


def plus():
    return add2(1)


def plus_looped():
    return fpa_ops.add5(1)
'''


@pytest.mark.parametrize(("step", "old", "new", "part"), [
    ("plus", "make_adder(2)", "make_adder(3)", "fpa_ops.add2"),
    ("plus_looped", "= make_adder(n)", "= make_adder(n + 1)", "fpa_ops.add5"),
])
def test_a_function_another_modules_factory_made_is_named_by_the_module_that_binds_it(
    load: Loader, step: str, old: str, new: str, part: str,
) -> None:
    """``add2 = make_adder(2)`` in ``ops.py``, the factory in ``utils.py``: the part is ``ops.add2``, not
    ``utils.add2``, which does not exist (the name was looked up in the factory's module only)."""
    files = {"fpa_utils.py": FACTORY_UTILS, "fpa_ops.py": FACTORY_OPS, "fpa_steps.py": FACTORY_STEPS}
    before = fingerprint(getattr(load(files, "fpa_steps"), step))
    after = fingerprint(getattr(load({**files, "fpa_ops.py": FACTORY_OPS.replace(old, new)}, "fpa_steps"), step))
    assert before.digest != after.digest
    assert changed_parts(before, after) == {part}


BOUND_MODELS = '''
class Trainer:
    def __init__(self, n):
        self.n = n

    def fit(self):
        return len(self)

    def __len__(self):
        return self.n
'''

BOUND_STEPS = '''
from fpb_models import Trainer

trainer = Trainer(3)
'''


def test_an_edit_of_the_class_of_a_bound_steps_object_names_the_method_not_the_object(load: Loader) -> None:
    """``step(trainer.fit)``, ``fit`` using ``len(self)`` (so the whole class counts): editing
    ``__len__`` is no change of the object's data, and the reason says only the method changed."""
    files = {"fpb_models.py": BOUND_MODELS, "fpb_steps.py": BOUND_STEPS}
    before = fingerprint(load(files, "fpb_steps").trainer.fit)
    edited = {**files, "fpb_models.py": BOUND_MODELS.replace("return self.n", "return self.n + 1")}
    after = fingerprint(load(edited, "fpb_steps").trainer.fit)
    assert before.digest != after.digest
    assert changed_parts(before, after) == {"Trainer"}  # the step's module: shown without it
    data = fingerprint(load({**files, "fpb_steps.py": BOUND_STEPS.replace("Trainer(3)", "Trainer(4)")},
                            "fpb_steps").trainer.fit)
    assert changed_parts(before, data) == {"<self> bound instance"}


WRAPS_UTILS = '''
import functools


def timed(fn):
    @functools.wraps(fn)
    def inner(*a, **k):
        return fn(*a, **k)
    return inner


def scaled(k):
    def deco(fn):
        @functools.wraps(fn)
        def w(*a, **kw):
            return fn(*a, **kw) * k
        return w
    return deco
'''

WRAPS_STEPS = '''
from fpw_utils import scaled, timed


@scaled(2)
def double_sq(x):
    return x * x


@timed
def load():
    return 1.0


@scaled(3)
def load2():
    return 2.0


def use():
    return double_sq(3.0)
'''


@pytest.mark.parametrize(("step", "file", "old", "new", "part"), [
    ("load", "fpw_utils.py", "return fn(*a, **k)", "return fn(*a, **k) * 2", "fpw_utils.timed"),
    ("load2", "fpw_steps.py", "@scaled(3)", "@scaled(4)", "closure value `k` of `load2` (decorator `scaled`)"),
    ("use", "fpw_steps.py", "@scaled(2)", "@scaled(5)", "closure value `k` of `double_sq` (decorator `scaled`)"),
    ("use", "fpw_utils.py", "* k\n", "* k + 1\n", "fpw_utils.scaled"),
])
def test_a_functools_wraps_decorator_is_named_as_the_decorator_and_its_argument(
    load: Loader, step: str, file: str, old: str, new: str, part: str,
) -> None:
    """``@step @timed def load``: an edit of ``timed`` read "code of `load (via timed.<locals>.inner)`",
    as if the step were edited, and ``@scaled(3)`` to ``@scaled(4)`` only "code of `k`"."""
    files = {"fpw_utils.py": WRAPS_UTILS, "fpw_steps.py": WRAPS_STEPS}
    before = fingerprint(getattr(load(files, "fpw_steps"), step))
    after = fingerprint(getattr(load({**files, file: files[file].replace(old, new)}, "fpw_steps"), step))
    assert before.digest != after.digest
    assert changed_parts(before, after) == {part}
