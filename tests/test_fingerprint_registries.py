"""Code a step reaches through a registry, a table, a decorator object or a package's re-exports,
edited in another module.

A project's classes register themselves (``__init_subclass__`` filling
``Base.REGISTRY``), its enums pick a handler from a table keyed by member
(``HANDLERS = {Kind.A: h_a}``), its decorators are classes (``@Traced``).
Each case edits one module and checks that the digest of the step that runs
the edited code changes, and that a step which does not stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.fingerprint import CodeFingerprint, fingerprint
from orchestrator.hashing import hash_value
from tests.test_fingerprint import Loader, changed_parts

BASE = '''
class Base:
    REGISTRY = {}

    def __init_subclass__(cls, key=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if key:
            Base.REGISTRY[key] = cls

    def run(self, x):
        return x * 10

    @staticmethod
    def halve(x):
        return x / 2


class Factory:
    KINDS = {}

    def __init_subclass__(cls, kind=None, **kwargs):
        super().__init_subclass__(**kwargs)
        Factory.KINDS[kind] = cls

    @classmethod
    def create(cls, kind):
        return cls.KINDS[kind]()


class Alpha(Factory, kind="alpha"):
    def go(self):
        return "alpha-1"


class Beta(Factory, kind="beta"):
    def go(self):
        return "beta-1"
'''

MODELS = '''
import enum
import functools

from fpr_base import Base


class Child(Base, key="child"):
    def other(self):
        return 1


class Other(Base, key="other"):
    def run(self, x):
        return x + 100


class Traced:
    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args) + 0


@Traced
def traced(x):
    return x + 2


class Kind(enum.Enum):
    A = "a"
    B = "b"

    def handler(self):
        return HANDLERS[self]


def h_a(x):
    return x + 1


def h_b(x):
    return x + 2


HANDLERS = {Kind.A: h_a, Kind.B: h_b}
'''

STEPS = '''
from fpr_base import Base, Factory
from fpr_models import HANDLERS, Child, Kind, traced


def by_registry(x):
    return Base.REGISTRY["other"]().run(x)


def by_subclass(x):
    return Child().run(x)


def by_factory(kind):
    return Factory.create(kind).go()


def by_traced(x):
    return traced(x)


def by_table(x):
    return HANDLERS[Kind.B](x)
'''

FILES = {"fpr_base.py": BASE, "fpr_models.py": MODELS, "fpr_steps.py": STEPS}


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Loader]:
    loader = Loader(tmp_path)
    yield loader
    loader.close()


def edit(file: str, old: str, new: str) -> dict[str, str]:
    files = dict(FILES)
    assert files[file].count(old) == 1, f"{file} has no single {old!r}"
    files[file] = files[file].replace(old, new)
    return files


def fp(load: Loader, files: dict[str, str], name: str) -> CodeFingerprint:
    return fingerprint(getattr(load(files, "fpr_steps"), name))


def test_a_class_registered_by_init_subclass_counts_for_a_step_reading_the_registry(load: Loader) -> None:
    """``Base.REGISTRY = {}`` counted by its text left a step running ``Other.run`` cached after its edit."""
    before = fp(load, FILES, "by_registry")
    after = fp(load, edit("fpr_models.py", "return x + 100", "return x + 101"), "by_registry")
    assert before.digest != after.digest
    assert "fpr_models.Other" in changed_parts(before, after)


def test_registering_does_not_make_every_subclass_count(load: Loader) -> None:
    """``__init_subclass__`` reads the registry to fill it: a step using one subclass keeps its key."""
    before = fp(load, FILES, "by_subclass")
    after = fp(load, edit("fpr_models.py", "return x + 100", "return x + 101"), "by_subclass")
    assert before.digest == after.digest


def test_a_class_registered_by_init_subclass_counts_for_a_factory_reading_cls_kinds(load: Loader) -> None:
    """``Factory.create(kind)`` runs ``cls.KINDS[kind]()``: editing ``Beta.go`` left the step cached."""
    before = fp(load, FILES, "by_factory")
    after = fp(load, edit("fpr_base.py", "return \"beta-1\"", "return \"beta-2\""), "by_factory")
    assert before.digest != after.digest
    assert "fpr_base.Beta" in changed_parts(before, after)


def test_a_decorator_that_is_a_class_counts_its_call(load: Loader) -> None:
    """``@Traced`` (functools.update_wrapper in __init__): its ``__call__`` runs around the helper."""
    before = fp(load, FILES, "by_traced")
    after = fp(load, edit("fpr_models.py", "self.fn(*args) + 0", "self.fn(*args) + 1"), "by_traced")
    assert before.digest != after.digest
    assert "fpr_models.Traced" in changed_parts(before, after)
    helper = fp(load, edit("fpr_models.py", "return x + 2\n\n\nclass Kind", "return x + 3\n\n\nclass Kind"), "by_traced")
    assert helper.digest != before.digest


def test_a_table_keyed_by_members_of_an_enum_that_reads_it_is_no_cycle(load: Loader) -> None:
    """``HANDLERS = {Kind.A: h_a}`` read by ``Kind.handler``, imported by the step: it was refused,
    'HANDLERS used by Kind contains itself'; each handler counts."""
    before = fp(load, FILES, "by_table")
    after = fp(load, edit("fpr_models.py", "return x + 2\n\n\nHANDLERS", "return x + 3\n\n\nHANDLERS"), "by_table")
    assert before.digest != after.digest
    assert "fpr_models.h_b" in changed_parts(before, after)


def test_an_enum_member_carries_the_code_of_the_table_its_method_reads(load: Loader) -> None:
    """``step(kind=Kind.A)`` calling ``kind.handler()(x)`` runs ``h_a``: the member's digest
    counted the table by the handlers' names only, so editing ``h_a`` kept the step cached."""
    before = hash_value(load(FILES, "fpr_models").Kind.A)
    edited = hash_value(load(edit("fpr_models.py", "return x + 1\n", "return x + 11\n"), "fpr_models").Kind.A)
    same = hash_value(load(FILES, "fpr_models").Kind.A)
    assert before != edited
    assert before == same


INSTANCES = '''
class Norm:
    def __call__(self, x):
        return x / 2


NORM = Norm()
OPS = {"norm": Norm()}


class Holder:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        return NORM(x) * self.k


def by_table(x):
    return OPS["norm"](x)
'''


@pytest.mark.parametrize("name", ["Holder", "by_table"])
def test_a_value_carries_the_code_of_an_instance_its_code_reads(load: Loader, name: str) -> None:
    """``step(holder=Holder(2))`` whose ``apply`` calls the module constant ``NORM = Norm()`` (or a
    function passed as a value that calls ``OPS["norm"]``): ``NORM`` counted by its data, so editing
    ``Norm.__call__`` kept the step cached."""
    def value(files: dict[str, str]) -> object:
        module = load(files, "fpr_instances")
        found = getattr(module, name)
        return found(2) if isinstance(found, type) else found

    files = {"fpr_instances.py": INSTANCES}
    before = hash_value(value(files))
    edited = hash_value(value({"fpr_instances.py": INSTANCES.replace("x / 2", "x / 3")}))
    assert before != edited
    assert hash_value(value(files)) == before


REEXPORTS = {
    "fpr_impl.py": '''
import functools


def clean(x):
    return x + 1


@functools.lru_cache
def cached(x):
    return x + 2
''',
    "fpr_api.py": '''
from fpr_impl import cached, clean

VERSION = 1
''',
    "fpr_picker.py": '''
import fpr_api


def pick(name, x):
    return getattr(fpr_api, name)(x)
''',
}


@pytest.mark.parametrize("old,new", [("return x + 1", "return x + 11"), ("return x + 2", "return x + 22")])
def test_a_module_used_whole_counts_the_functions_it_imports_from_your_other_modules(
        load: Loader, old: str, new: str) -> None:
    """``getattr(src, name)`` on a package whose ``__init__.py`` re-exports ``from .features import clean``:
    only functions defined in ``src`` itself counted, so editing ``clean`` (or an ``lru_cache`` one) in
    its own module kept the step cached."""
    def picked(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(load(files, "fpr_picker").pick)

    before = picked(REEXPORTS)
    after = picked({**REEXPORTS, "fpr_impl.py": REEXPORTS["fpr_impl.py"].replace(old, new)})
    assert before.digest != after.digest
    moved = REEXPORTS["fpr_impl.py"].replace("def clean(x):", "# cleans\n\n\ndef clean(x):")
    assert picked({**REEXPORTS, "fpr_impl.py": moved}).digest == before.digest


PATCHED = '''
class Scaler:
    def scaled(self, x):
        return x * self.SCALE


Scaler.SCALE = 3


def _twice(self, x):
    return 2 * x


Scaler.twice = _twice


def by_scale(x):
    return Scaler().scaled(x)
'''


@pytest.mark.parametrize("old,new,part", [
    ("Scaler.SCALE = 3", "Scaler.SCALE = 4", "Scaler.SCALE"),
    ("return 2 * x", "return 3 * x", "Scaler.twice"),
])
def test_an_attribute_set_on_a_class_after_its_body_counts(load: Loader, old: str, new: str, part: str) -> None:
    """``Scaler.SCALE = 3`` or ``Scaler.twice = _twice`` below the class: its source does not show
    them, so editing either kept the steps using ``Scaler`` cached."""
    def scaled(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(load(files, "fpr_patched").by_scale)

    before = scaled({"fpr_patched.py": PATCHED})
    after = scaled({"fpr_patched.py": PATCHED.replace(old, new)})
    assert before.digest != after.digest
    assert changed_parts(before, after) == {part}
    spaced = PATCHED.replace("Scaler.SCALE = 3\n", "# the scale\nScaler.SCALE = 3  # x3\n\n")
    assert scaled({"fpr_patched.py": spaced}).digest == before.digest


def test_an_object_of_a_registering_class_carries_the_code_of_the_classes_registered(load: Loader) -> None:
    """``Alpha()`` given to a step that calls ``obj.create("beta")``: its class's ``KINDS`` table counted
    by the classes' names, so editing ``Beta.go`` kept the step cached."""
    before = hash_value(load(FILES, "fpr_base").Alpha())
    edited = hash_value(load(edit("fpr_base.py", "return \"beta-1\"", "return \"beta-2\""), "fpr_base").Alpha())
    assert before != edited
    assert hash_value(load(FILES, "fpr_base").Alpha()) == before


PLAIN_DECORATOR = '''
def plain(fn):
    def inner(x):
        return fn(x) + 1000
    return inner


@plain
def helper(x):
    return x + 3


def uses(x):
    return helper(x)
'''


def test_a_decorator_without_wraps_is_named_apart_from_the_function_it_wraps(load: Loader) -> None:
    """Editing ``plain``'s wrapper read "code of `helper #1` changed", beside "code of `helper`" for the body."""
    def used(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(load(files, "fpr_plain").uses)

    before = used({"fpr_plain.py": PLAIN_DECORATOR})
    wrapper = used({"fpr_plain.py": PLAIN_DECORATOR.replace("+ 1000", "+ 2000")})
    body = used({"fpr_plain.py": PLAIN_DECORATOR.replace("x + 3", "x + 4")})
    assert changed_parts(before, wrapper) == {"helper (via plain.<locals>.inner)"}
    assert changed_parts(before, body) == {"helper"}


PICKERS = {
    "fpr_helpers.py": '''
def fn_a(x):
    return x + 1
''',
    "fpr_pickers.py": '''
import fpr_helpers


def picker(x, name="a"):
    return getattr(fpr_helpers, "fn_" + name)(x)


class Picker:
    def pick(self, x):
        return getattr(fpr_helpers, "fn_a")(x)
''',
}


@pytest.mark.parametrize("name", ["picker", "Picker"])
def test_a_value_whose_code_uses_a_module_whole_carries_its_functions(load: Loader, name: str) -> None:
    """A function (or object) given to a step whose code runs ``getattr(helpers, name)(x)``: the module
    counted for nothing in its digest, so editing ``helpers.fn_a`` kept the step cached."""
    def value(files: dict[str, str]) -> object:
        found = getattr(load(files, "fpr_pickers"), name)
        return found() if isinstance(found, type) else found

    before = hash_value(value(PICKERS))
    edited = hash_value(value({**PICKERS, "fpr_helpers.py": PICKERS["fpr_helpers.py"].replace("+ 1", "+ 10")}))
    assert before != edited
    assert hash_value(value(PICKERS)) == before


UNWRAPPED_METHOD = {
    "fpr_calc.py": '''
def fn_a(x):
    return x + 1
''',
    "fpr_plainmethod.py": '''
import fpr_calc


def plain(fn):
    def inner(*args):
        return fn(*args) + 0
    return inner


class Model:
    @plain
    def run(self, x):
        return fpr_calc.fn_a(x) * 2


def uses(x):
    return Model().run(x)
''',
}


def test_a_method_under_a_decorator_without_wraps_counts_what_it_calls(load: Loader) -> None:
    """``@plain def run(self, x): return calc.fn_a(x)``: only the wrapper's reads were followed (it holds
    the method in its closure), so editing ``fn_a`` kept the steps using ``Model`` cached."""
    def used(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(load(files, "fpr_plainmethod").uses)

    before = used(UNWRAPPED_METHOD)
    after = used({**UNWRAPPED_METHOD, "fpr_calc.py": UNWRAPPED_METHOD["fpr_calc.py"].replace("+ 1", "+ 10")})
    assert changed_parts(before, after) == {"fpr_calc.fn_a"}


@pytest.mark.parametrize("file,old,new", [
    ("fpr_plainmethod.py", "* 2", "* 3"),
    ("fpr_calc.py", "+ 1", "+ 10"),
])
def test_an_object_carries_the_code_of_a_method_under_a_decorator_without_wraps(
        load: Loader, file: str, old: str, new: str) -> None:
    """``step(model=Model())``: the object's digest counted the wrapper's bytecode, not the method's."""
    def value(files: dict[str, str]) -> object:
        return load(files, "fpr_plainmethod").Model()

    before = hash_value(value(UNWRAPPED_METHOD))
    edited = hash_value(value({**UNWRAPPED_METHOD, file: UNWRAPPED_METHOD[file].replace(old, new)}))
    assert before != edited
    assert hash_value(value(UNWRAPPED_METHOD)) == before


def test_a_function_value_carries_the_code_a_decorator_without_wraps_holds(load: Loader) -> None:
    """``step(fn=uses)`` where ``uses`` calls a helper under ``@plain``: the wrapper's closure was not
    followed, so editing the helper's body kept the step cached."""
    files = {"fpr_plainfn.py": PLAIN_DECORATOR}
    before = hash_value(load(files, "fpr_plainfn").uses)
    edited = hash_value(load({"fpr_plainfn.py": PLAIN_DECORATOR.replace("x + 3", "x + 4")}, "fpr_plainfn").uses)
    assert before != edited
    assert hash_value(load(files, "fpr_plainfn").uses) == before


def test_a_registry_holding_what_cannot_be_hashed_counts_its_code(load: Loader) -> None:
    """A registry of classes that also holds what cannot be pickled (a generator, a connection) must
    not refuse the step that reads it; its classes count."""
    files = edit("fpr_base.py", "    REGISTRY = {}\n", "    REGISTRY = {\"pending\": (n for n in [1])}\n")
    before = fp(load, files, "by_registry")
    edited = {**files, "fpr_models.py": files["fpr_models.py"].replace("return x + 100", "return x + 101")}
    assert before.digest != fp(load, edited, "by_registry").digest


def test_a_module_used_whole_importing_a_function_with_an_unhashable_default_still_fingerprints(
        load: Loader) -> None:
    """A re-exported function whose default is a generator (a connection) must not refuse the step."""
    files = {**REEXPORTS, "fpr_impl.py": REEXPORTS["fpr_impl.py"] + "\n\ndef streamed(x, rows=(n for n in [1])):\n    return x\n",
             "fpr_api.py": REEXPORTS["fpr_api.py"].replace("import cached, clean", "import cached, clean, streamed")}
    before = fingerprint(load(files, "fpr_picker").pick)
    edited = {**files, "fpr_impl.py": files["fpr_impl.py"].replace("return x + 1", "return x + 11")}
    assert fingerprint(load(edited, "fpr_picker").pick).digest != before.digest


def test_a_helper_wrapped_by_a_decorator_of_another_module_is_named_where_it_is_defined(load: Loader) -> None:
    """``@plain`` from decos.py on helpers.other, imported as ``oo``: an edit of the wrapper read
    "code of `decos.oo` changed", a name that exists nowhere."""
    decos = "def plain(fn):\n    def inner(x):\n        return fn(x) + 1000\n    return inner\n"
    files = {"fpr_decos.py": decos,
             "fpr_wrapped.py": "from fpr_decos import plain\n\n\n@plain\ndef other(x):\n    return x + 3\n",
             "fpr_uses_oo.py": "from fpr_wrapped import other as oo\n\n\ndef uses(x):\n    return oo(x)\n"}

    def used(decorator_module: str) -> CodeFingerprint:
        return fingerprint(load({**files, "fpr_decos.py": decorator_module}, "fpr_uses_oo").uses)

    assert changed_parts(used(decos), used(decos.replace("+ 1000", "+ 2000"))) == {
        "fpr_wrapped.other (via plain.<locals>.inner)"}


def test_a_wrapped_helper_imported_under_an_alias_is_named_as_its_module_names_it(load: Loader) -> None:
    """``from helpers import helper as hh``: an edit of the wrapper read "code of `helpers.hh` changed",
    a name the helpers module does not have."""
    deco = PLAIN_DECORATOR.replace("\n\ndef uses(x):\n    return helper(x)\n", "")
    user = "from fpr_deco_mod import helper as hh\n\n\ndef uses(x):\n    return hh(x)\n"

    def used(decorator_module: str) -> CodeFingerprint:
        return fingerprint(load({"fpr_deco_mod.py": decorator_module, "fpr_alias_user.py": user},
                                "fpr_alias_user").uses)

    before = used(deco)
    assert changed_parts(before, used(deco.replace("+ 1000", "+ 2000"))) == {
        "fpr_deco_mod.helper (via plain.<locals>.inner)"}


PLUGINS = {
    "fprp/__init__.py": "",
    "fprp/models/__init__.py": '''
from fprp.models.base import Model
from fprp.models.ridge import Lasso, Ridge
''',
    "fprp/models/base.py": '''
class Model:
    name = "base"

    @classmethod
    def create(cls, name):
        for sub in cls.__subclasses__():
            if sub.name == name:
                return sub()
            try:
                return sub.create(name)
            except KeyError:
                pass
        raise KeyError(name)

    def fit_predict(self, xs):
        return [self.transform(x) for x in xs]


class Plain:
    def run(self, x):
        return x
''',
    "fprp/models/ridge.py": '''
from fprp.models.base import Model, Plain


class Ridge(Model):
    name = "ridge"

    def transform(self, x):
        return x * 2


class Lasso(Ridge):
    name = "lasso"

    def transform(self, x):
        return x * 4


class Extra(Plain):
    def run(self, x):
        return x + 1
''',
    "fprp/steps.py": '''
from fprp.models import Model
from fprp.models.base import Plain


def train(kind):
    return Model.create(kind).fit_predict([1, 2, 3])


def by_name(kind):
    return {sub.name: sub for sub in Model.__subclasses__()}[kind]().fit_predict([1])


def plain(x):
    return Plain().run(x)
''',
}


@pytest.mark.parametrize("name", ["train", "by_name"])
@pytest.mark.parametrize("old,new,part", [
    ("return x * 2", "return x * 3", "ridge.Ridge"),
    ("return x * 4", "return x * 5", "ridge.Lasso"),  # a subclass of a subclass
])
def test_a_class_found_through_subclasses_counts(load: Loader, name: str, old: str, new: str, part: str) -> None:
    """``Model.create(kind)`` looping over ``cls.__subclasses__()`` (or a step over ``Model.__subclasses__()``)
    runs a plugin no name in the code reads: editing ``Ridge.transform`` kept the step cached."""
    def used(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(getattr(load(files, "fprp.steps"), name))

    before = used(PLUGINS)
    after = used({**PLUGINS, "fprp/models/ridge.py": PLUGINS["fprp/models/ridge.py"].replace(old, new)})
    assert before.digest != after.digest
    assert changed_parts(before, after) == {part}
    assert after.methods[part]["transform"] != before.methods[part]["transform"]


def test_a_class_whose_code_reads_no_subclasses_leaves_its_subclasses_out(load: Loader) -> None:
    """``Plain().run(x)``: ``Extra(Plain)`` is no code the step runs, so editing it changes nothing."""
    def used(files: dict[str, str]) -> CodeFingerprint:
        return fingerprint(load(files, "fprp.steps").plain)

    before = used(PLUGINS)
    after = used({**PLUGINS, "fprp/models/ridge.py": PLUGINS["fprp/models/ridge.py"].replace("x + 1", "x + 2")})
    assert before.digest == after.digest


def test_a_subclass_defined_again_counts_once(load: Loader) -> None:
    """``importlib.reload`` (or a notebook cell run again) leaves the old ``Ridge`` among ``Model``'s
    subclasses until Python collects it: only the one its module's name finds counts, so the key
    is the one a fresh process gives."""
    import importlib
    import sys

    steps = load(PLUGINS, "fprp.steps")
    before = fingerprint(steps.train)
    old = sys.modules["fprp.models.ridge"].Ridge
    importlib.reload(sys.modules["fprp.models.ridge"])
    assert old in steps.Model.__subclasses__() and sys.modules["fprp.models.ridge"].Ridge is not old
    assert fingerprint(steps.train).digest == before.digest


ACCESSORS = {
    "fpra/__init__.py": "",
    "fpra/accessors.py": '''
import pandas as pd


@pd.api.extensions.register_dataframe_accessor("fpra_feat")
class FeatAccessor:
    def __init__(self, df):
        self._df = df

    def add_len(self):
        return self._df.assign(n=self._df["s"].str.len())


@pd.api.extensions.register_series_accessor("fpra_text")
class TextAccessor:
    def __init__(self, s):
        self._s = s

    def n(self):
        return self._s.str.len()
''',
    "fpra/steps.py": '''
import fpra.accessors  # noqa: F401


def featurize(df):
    return df.fpra_feat.add_len()


def lengths(s):
    return [n for n in s.fpra_text.n()]


def by_helper(df):
    return lengths(df["s"])


class Featurizer:
    def run(self, df):
        return df.fpra_feat.add_len()


def by_method(df):
    return Featurizer().run(df)


def plain(df):
    return df.shape, df.columns.str.upper()
''',
}


def _unregister_accessors() -> None:
    """Take the accessors ``ACCESSORS`` registers off pandas' classes (registering one again warns)."""
    import pandas as pd

    for cls in (pd.DataFrame, pd.Series, pd.Index):
        for name in [name for name in cls._accessors if name.startswith("fpra_")]:
            delattr(cls, name)
            cls._accessors.discard(name)


@pytest.fixture
def accessors(load: Loader) -> Iterator[Callable[[dict[str, str], str], CodeFingerprint]]:
    import pandas  # noqa: F401  (imported here: the loader unloads the modules a version's import added)

    def used(files: dict[str, str], name: str) -> CodeFingerprint:
        _unregister_accessors()
        return fingerprint(getattr(load(files, "fpra.steps"), name))

    yield used
    _unregister_accessors()


@pytest.mark.parametrize("name,old,new,part", [
    ("featurize", "str.len())", "str.len() + 1)", "accessors.FeatAccessor"),
    ("by_helper", "return self._s.str.len()", "return self._s.str.len() * 2", "accessors.TextAccessor"),
    ("by_method", "str.len())", "str.len() + 1)", "accessors.FeatAccessor"),
])
def test_a_pandas_accessor_of_the_project_counts_for_code_reading_its_name(
        accessors: Callable[[dict[str, str], str], CodeFingerprint], name: str, old: str, new: str,
        part: str) -> None:
    """``df.feat.add_len()`` runs ``FeatAccessor.add_len``, which pandas finds by the name
    ``register_dataframe_accessor("feat")`` gave it: editing it kept the step cached."""
    before = accessors(ACCESSORS, name)
    edited = {**ACCESSORS, "fpra/accessors.py": ACCESSORS["fpra/accessors.py"].replace(old, new)}
    after = accessors(edited, name)
    assert changed_parts(before, after) == {part}


def test_code_reading_no_accessors_name_leaves_accessors_out(
        accessors: Callable[[dict[str, str], str], CodeFingerprint]) -> None:
    """``df.shape``, ``df.columns.str``: pandas' own accessors and attributes count by its version only."""
    before = accessors(ACCESSORS, "plain")
    edited = {**ACCESSORS, "fpra/accessors.py": ACCESSORS["fpra/accessors.py"].replace("str.len()", "str.len() + 1")}
    assert accessors(edited, "plain").digest == before.digest
    assert not [part for part in before.parts if "Accessor" in part]


def test_a_process_without_pandas_does_not_import_it_to_look_for_accessors() -> None:
    """No accessor exists before pandas is imported: a step reading ``df.feat`` there costs no import."""
    import os
    import subprocess
    import sys

    script = ("import sys\nfrom orchestrator.fingerprint import fingerprint\n\n"
              "def featurize(df):\n    return df.feat.add_len()\n\n"
              "fingerprint(featurize)\nprint('pandas' in sys.modules)\n")
    root = Path(__file__).parent.parent
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(root)}, cwd=root,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
