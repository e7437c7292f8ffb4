"""A value made from the user's own class carries that class's code: editing it re-runs its users."""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
import textwrap
import types
import typing

import cloudpickle
import pytest

from orchestrator.hashing import hash_value

from .conftest import ROOT, edit_file, reran_after_edit, run_once_per_session


def _output(orch):
    shown = json.loads(orch("show", "latest", "--json").stdout)
    return {s["name"]: s["status"] for s in shown["steps"]}


@pytest.mark.parametrize("file,old,new,expected", [
    # A method of the class an input was built from: the step using the instance re-runs.
    ("behaviour_lib.py", "return scale_by(v, self.k) *", "return scale_by(v, self.k) + 1 *", {"build", "use"}),
    # A helper that method calls: the same, though neither step's own code changed.
    ("behaviour_lib.py", "    return v * k", "    return v * k + 1", {"build", "use"}),
    # Data the method reads: a class attribute, a module constant, its own default.
    ("behaviour_lib.py", "    unit = 1", "    unit = 3", {"build", "use"}),
    ("behaviour_lib.py", "OFFSET = 0", "OFFSET = 7", {"build", "use"}),
    ("behaviour_consts.py", "FACTOR = 1", "FACTOR = 2", {"build", "use"}),
    ("behaviour_lib.py", "def apply(self, v, extra=0)", "def apply(self, v, extra=1)", {"build", "use"}),
    # A parameter value made from the user's dataclass in the pipeline body.
    ("behaviour_lib.py", "        return v + self.by", "        return v - self.by", {"shift"}),
    # scikit-learn's wrapper around transform: what it wraps counts.
    ("behaviour_lib.py", "np.asarray(X) + self.k", "np.asarray(X) + 2 * self.k", {"make_shift", "transform"}),
    # A function passed as a value.
    ("behaviour_lib.py", "return [2 * x for x in xs]", "return [3 * x for x in xs]", {"apply_fn:double"}),
    ("behaviour.py", "[x + 1 for x in xs]", "[x + 2 for x in xs]", {"apply_fn:<lambda>"}),
    # Comments, blank lines and line shifts count for nothing, also in a lambda's file.
    ("behaviour.py", "@pipeline\n", "# the pipeline\n\n\n@pipeline\n", set()),
])
def test_editing_a_class_reruns_the_steps_that_use_its_instances(orch, calls, project, file, old, new, expected):
    assert reran_after_edit(orch, calls, project, "behaviour.py", file, old, new) == expected


def test_comments_in_the_class_keep_everything_cached(orch, calls, project):
    run_once_per_session(orch, "behaviour.py")
    calls.clear()
    edit_file(project, "behaviour_lib.py", "    def apply(self, v, extra=0):\n",
          "    # scales\n\n    def apply(self, v, extra=0):\n        \"\"\"Scale.\"\"\"\n")
    assert orch("run", "behaviour.py").returncode == 0
    assert calls.ran() == set()


@pytest.mark.slow
def test_instances_hash_the_same_on_every_executor(orch, calls):
    """Workers receive the class by value, without its source: the digest must not change."""
    digests = []
    for executor in ("sequential", "process"):
        orch("cache", "gc", "--keep-last", "0")
        result = orch("run", "behaviour.py", "--executor", executor, "--rerun", "build", "--json")
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        digests.append({s["name"]: [o["hash"] for o in s["outputs"]] for s in shown["steps"]})
    assert digests[0] == digests[1]


def _scaler_class(body: str) -> type:
    namespace: dict = {}
    exec(f"def apply(self, v):\n    return {body}", namespace)
    # A module that is not loaded counts as the user's (a worker that received the class by value).
    return type("Scaler", (), {"apply": namespace["apply"], "__module__": "not_loaded_user_module"})


def test_same_state_and_name_but_other_code_hash_differently():
    first, second, again = _scaler_class("v * 2"), _scaler_class("v * 3"), _scaler_class("v * 2")
    a, b, c = first(), second(), again()
    a.k = b.k = c.k = 2
    assert hash_value(a) != hash_value(b)
    assert hash_value(a) == hash_value(c)  # code compared by content, not by object
    assert hash_value(first) != hash_value(second)  # the class itself as a value, too


def test_classes_with_slots_hash_the_same_in_a_worker_that_got_them_by_value(tmp_path, monkeypatch):
    (tmp_path / "slotted_lib.py").write_text(textwrap.dedent("""
        import dataclasses

        @dataclasses.dataclass(slots=True)
        class Config:
            depth: int = 3

        class Point:
            __slots__ = ("x", "y")

            def __init__(self, x, y):
                self.x, self.y = x, y
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import slotted_lib

    cloudpickle.register_pickle_by_value(slotted_lib)
    try:
        values = [slotted_lib.Config(4), slotted_lib.Point(1, 2)]
        blob = cloudpickle.dumps(values)
    finally:
        cloudpickle.unregister_pickle_by_value(slotted_lib)
    assert _hashes_in_another_process(blob) == [hash_value(v) for v in values]


def _hashes_in_another_process(blob: bytes) -> list[str]:
    """The digests of the values pickled in ``blob``, as a fresh process (a worker) computes them."""
    script = (
        "import json, pickle, sys; from orchestrator.hashing import hash_value; "
        "print(json.dumps([hash_value(v) for v in pickle.loads(sys.stdin.buffer.read())]))"
    )
    worker = subprocess.run([sys.executable, "-c", script], input=blob, capture_output=True, check=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return list(json.loads(worker.stdout))


def test_classes_with_generated_methods_hash_the_same_in_a_worker_that_got_them_by_value(tmp_path, monkeypatch):
    """Sent as a task is (``sending.dumps``). namedtuple's `_make`, `_replace`, `__repr__`... arrived as code of
    no file (cloudpickle's `<dynamic-code>`), so the worker counted them by bytecode where the driver counts
    them by name, as the standard library's: another digest on the process pool."""
    from orchestrator.executors.sending import dumps

    (tmp_path / "generated_lib.py").write_text(textwrap.dedent("""
        import collections, dataclasses, enum, typing

        class Split(typing.NamedTuple):
            n_train: int
            n_test: int = 0

            def total(self):
                return self.n_train + self.n_test

        Pair = collections.namedtuple("Pair", "a b")

        @dataclasses.dataclass(frozen=True, order=True)
        class Config:
            depth: int = 3

        class Kind(enum.Enum):
            A = enum.auto()
            B = enum.auto()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import generated_lib as lib

    cloudpickle.register_pickle_by_value(lib)
    try:
        values = [lib.Split(80, 20), lib.Pair(1, "b"), lib.Config(4), lib.Kind.B, lib.Split, lib.Pair]
        blob = dumps(values)
    finally:
        cloudpickle.unregister_pickle_by_value(lib)
    assert _hashes_in_another_process(blob) == [hash_value(v) for v in values]


def test_library_code_sent_by_value_is_library_code_where_python_lives_elsewhere(monkeypatch):
    """A Dask worker's Python may be installed elsewhere (an image): the file the driver names is none of its own."""
    from orchestrator import user_code
    from orchestrator.class_refs import _library_code

    monkeypatch.setattr(user_code, "_SENT_KINDS", {})
    elsewhere = "/opt/elsewhere/lib/python3.11/collections/__init__.py"
    assert user_code.file_kind(elsewhere) == "user"
    make = _Pair._make.__func__
    code = _library_code(make.__code__, elsewhere, "stdlib")
    assert code.co_filename == elsewhere
    assert user_code.is_library_function(types.FunctionType(code, make.__globals__, closure=make.__closure__))
    user_code._path_kind.cache_clear()


class _Level(enum.Enum):
    LOW = 1
    HIGH = 2


class _Pair(typing.NamedTuple):
    a: int
    b: str


def _salted_stdlib_code(monkeypatch):
    """Make this process look like another Python release: the standard library's bytecode differs."""
    from orchestrator import hashing, value_code

    original = value_code._code_digest

    def other_release(code, strict=False):
        digest = original(code, strict)
        return digest[::-1] if code.co_filename.startswith(os.path.dirname(os.__file__)) else digest

    monkeypatch.setattr(value_code, "_code_digest", other_release)
    hashing._CODE_FEEDS.clear()  # the digests of classes already fed were made with the real bytecode


def test_enums_and_named_tuples_hash_alike_under_another_python_release(monkeypatch):
    # Python copies Enum.__new__ and namedtuple's _make into each such class, with the enum's own
    # bookkeeping (_member_map_, _use_args_...), all of which change between releases (3.11.2 and
    # 3.11.7 already): a member or a named tuple hashed differently on a machine with another Python.
    from orchestrator import hashing

    values = [_Level.HIGH, _Pair(1, "x"), {"level": _Level.LOW}]
    before = [hash_value(v) for v in values]
    _salted_stdlib_code(monkeypatch)
    monkeypatch.setattr(_Level, "_hashable_values_", [1, 2], raising=False)  # an attribute 3.12 added
    assert [hash_value(v) for v in values] == before
    hashing._CODE_FEEDS.clear()
    # Still what the enum holds and its own code: members' values, and a method of the user's.
    assert hash_value(_Level.HIGH) != hash_value(_Level.LOW)

    class _Level2(enum.Enum):  # same name and members, one more method: other behaviour
        LOW = 1
        HIGH = 2

        def label(self):
            return self.name.lower()

    _Level2.__qualname__ = _Level.__qualname__
    assert hash_value(_Level2.HIGH) != hash_value(_Level.HIGH)


def test_class_code_parts_names_the_users_classes_a_parameter_holds():
    """What a key records to say which class's code changed: the config's class, those in its fields
    and lists, nothing for a value of none, and a short walk of a long list."""
    import dataclasses

    from orchestrator.value_code import class_code_parts

    @dataclasses.dataclass
    class Layer:
        width: int = 8

        def units(self) -> int:
            return self.width

    @dataclasses.dataclass
    class Net:
        layers: list = dataclasses.field(default_factory=lambda: [Layer(), Layer(4)])
        lr: float = 0.1

    found = class_code_parts({"net": Net()})
    assert sorted(found) == sorted([f"{__name__}.{Net.__qualname__}", f"{__name__}.{Layer.__qualname__}"])
    layer = found[f"{__name__}.{Layer.__qualname__}"]
    assert layer["code"] and list(layer["methods"]) == ["units"]  # a dataclass's made methods have no source
    assert class_code_parts([1, "a", 2.0, None]) == {} and class_code_parts(list(range(10**5))) == {}
    assert class_code_parts([0] * 1000 + [Layer()]) == {}  # past the items looked at: named as before
