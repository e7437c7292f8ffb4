"""A step that is a bound method counts only the members of its class that it reaches through ``self``.

Editing another method of the class must not re-run it; editing anything it
reaches must, and when its code hides what it reaches (``getattr(self, name)``,
``self`` handed to a function) the whole class counts, as before.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.code_analysis import first_argument_attributes
from orchestrator.fingerprint import CodeFingerprint, fingerprint, self_digest

MODULE = '''
import dataclasses
import functools

from orchestrator import pipeline, step

LIMIT = 3


def outside(x):
    return x + 1


def takes_self(obj):
    return obj.k


class Base:
    def shared(self, x):
        return x * 2


class Trainer(Base):
    FACTOR = 2
    UNUSED = 5

    def __init__(self, k):
        self.k = k

    def fit(self, x):
        self.calls += 1
        return self.helper(x) + self.scaled + self.shared(x) + self.cached(x) + self.k

    def helper(self, x):
        return outside(x) * self.FACTOR

    @property
    def scaled(self):
        return self.k * LIMIT

    @functools.lru_cache
    def cached(self, x):
        return x

    def unrelated(self):
        return "v1"

    def __repr__(self):
        return "Trainer()"

    def dynamic(self, name):
        return getattr(self, name)()

    def escapes(self):
        return takes_self(self)

    @step
    def fit_step(self, x: int) -> int:
        return self.helper(x)


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int = 1

    def fit(self, x):
        return x + self.a + self.helper()

    def helper(self):
        return 2

    def other(self):
        return 3


FROZEN = Frozen()


@pipeline
def in_class(x: int = 1):
    return TRAINER.fit_step(x)


TRAINER = Trainer(3)
TRAINER.calls = 0
'''

_names = itertools.count()


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Callable[..., types.ModuleType]]:
    loaded: list[str] = []

    def _load(old: str = "", new: str = "") -> types.ModuleType:
        assert old in MODULE, old
        name = f"reach_case_{next(_names)}"
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(MODULE.replace(old, new, 1)))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        spec.loader.exec_module(module)
        return module

    yield _load
    for name in loaded:
        sys.modules.pop(name, None)


def _fp(module: types.ModuleType, method: str = "fit") -> CodeFingerprint:
    return fingerprint(getattr(module.TRAINER, method))


def _changed(a: CodeFingerprint, b: CodeFingerprint) -> set[str]:
    return {k for k in a.parts.keys() | b.parts.keys() if a.parts.get(k) != b.parts.get(k)}


@pytest.mark.parametrize(("old", "new"), [
    ('return "v1"', 'return "v2"'),
    ('return "Trainer()"', 'return "T()"'),
    ("UNUSED = 5", "UNUSED = 6"),
    ("self.k = k\n", "self.k = k + 0\n"),  # __init__ edited, the object's data the same
    ("return getattr(self, name)()", "return getattr(self, name)(1)"),
])
def test_editing_what_the_method_never_reaches_keeps_the_digest(load, old: str, new: str) -> None:
    assert _fp(load(old, new)).digest == _fp(load()).digest


@pytest.mark.parametrize(("old", "new", "part"), [
    ("return outside(x) * self.FACTOR", "return outside(x) + self.FACTOR", "Trainer.helper"),
    ("FACTOR = 2", "FACTOR = 4", "Trainer.FACTOR"),
    ("return self.k * LIMIT", "return self.k + LIMIT", "Trainer.scaled"),
    ("LIMIT = 3", "LIMIT = 4", "LIMIT"),
    ("return x + 1", "return x + 2", "outside"),
    ("return x * 2", "return x * 3", "Base.shared"),
    ("def cached(self, x):\n        return x", "def cached(self, x):\n        return -x", "Trainer.cached"),
    ("TRAINER = Trainer(3)", "TRAINER = Trainer(4)", "<self> bound instance"),
])
def test_editing_what_the_method_reaches_changes_the_digest(load, old: str, new: str, part: str) -> None:
    before, after = _fp(load()), _fp(load(old, new))
    assert before.digest != after.digest
    assert part in _changed(before, after)


def test_a_member_the_class_inherits_is_reached_where_it_is_defined(load) -> None:
    """Overriding an inherited method in the class is a change, though the base class is untouched."""
    module = load()
    override = load("    def unrelated(self):", "    def shared(self, x):\n        return x\n\n    def unrelated(self):")
    assert _fp(module).digest != _fp(override).digest


@pytest.mark.parametrize("method", ["dynamic", "escapes"])
def test_when_the_code_hides_what_it_reaches_the_whole_class_counts(load, method: str) -> None:
    before = _fp(load(), method)
    after = _fp(load('return "v1"', 'return "v2"'), method)
    assert before.digest != after.digest
    assert "Trainer" in _changed(before, after)


def test_custom_attribute_access_makes_the_whole_class_count(load) -> None:
    hook = "    def __getattr__(self, name):\n        return 0\n\n    def unrelated(self):"
    before = _fp(load("    def unrelated(self):", hook))
    after = _fp(load("    def unrelated(self):", hook.replace("return 0", "return 1")))
    assert before.digest != after.digest


def _uses(source: str) -> frozenset[str] | None:
    namespace: dict[str, object] = {}
    exec(textwrap.dedent(source), namespace)  # noqa: S102 - a test's own snippet
    fn = namespace["f"]
    assert isinstance(fn, types.FunctionType)
    return first_argument_attributes(fn)


@pytest.mark.parametrize(("source", "expected"), [
    ("def f(self, x): return self.a(x) + self.B", {"a", "B"}),
    ("def f(self): self.n += 1; self.m = 2; del self.o", {"n", "m", "o"}),
    ("def f(self): return [self.k * i for i in range(3)]", {"k"}),
    ("def f(self): return lambda: self.z", {"z"}),
    ("def f(self, other): return other.hidden + self.q", {"q"}),
    ("def f(self):\n    def g(self): return self\n    return g", set()),
    ("def f(self): return getattr(self, 'x')", None),
    ("def f(self): return self", None),
    ("def f(self): return len(self)", None),
    ("def f(self): return self.__dict__", None),
    ("def f(self): return lambda: type(self)", None),
    ("def f(self):\n    self = 3\n    return self.x", None),
    ("def f(*args): return args[0].x", None),
    ("class C:\n    def f(self): return super().f()\nf = C.f", None),
])
def test_first_argument_attributes(source: str, expected: set[str] | None) -> None:
    found = _uses(source)
    assert (None if found is None else set(found)) == expected


def test_a_step_of_a_class_body_counts_its_self_parameter_as_far_as_it_reaches(load, store: Path) -> None:
    """`@step` on a method, called as `trainer.fit_step(x)`: the object is its parameter `self`."""
    assert load().in_class.run(store=str(store)).status == "succeeded"
    kept = load('return "v1"', 'return "v2"').in_class.plan(store=str(store)).entries
    assert [e.status for e in kept] == ["cached"]
    edited = load("return outside(x) * self.FACTOR", "return outside(x) - self.FACTOR")
    [entry] = edited.in_class.plan(store=str(store)).entries
    assert entry.status == "will run" and entry.reason.startswith("parameter `self` changed")


def test_self_digest_only_for_the_object_a_class_body_step_runs_on(load) -> None:
    module = load()
    fit_step = module.Trainer.fit_step
    digest = self_digest(fit_step, "self", module.TRAINER)
    assert digest is not None
    assert self_digest(fit_step, "x", module.TRAINER) is None  # not its first parameter
    assert self_digest(fit_step, "self", object()) is None  # not an object of its class
    other = load('return "v1"', 'return "v2"')
    assert self_digest(other.Trainer.fit_step, "self", other.TRAINER) == digest
    moved = load("TRAINER = Trainer(3)", "TRAINER = Trainer(5)")
    assert self_digest(moved.Trainer.fit_step, "self", moved.TRAINER) != digest


def test_a_frozen_dataclass_is_narrowed_too(load) -> None:
    """The __setattr__ that frozen=True generates only refuses writes: it hides nothing."""
    digest = fingerprint(load().FROZEN.fit).digest
    assert fingerprint(load("return 3", "return 4").FROZEN.fit).digest == digest
    assert fingerprint(load("return 2", "return 5").FROZEN.fit).digest != digest
    assert fingerprint(load("FROZEN = Frozen()", "FROZEN = Frozen(2)").FROZEN.fit).digest != digest
