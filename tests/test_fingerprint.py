"""Tests of orchestrator.fingerprint: code edits change a step's digest, formatting does not.

Modules that a test edits are written to ``tmp_path`` from the templates
below, one directory per version, and imported fresh; static cases live in
``tests/fingerprint_cases``.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.errors import UnhashableValueError
from orchestrator.fingerprint import CodeFingerprint, code_root, fingerprint, is_user_module
from tests.fingerprint_cases import decorated, objects, packages, recursion, registry, unhashable

ROOT = Path(__file__).parent.parent

HELPERS = '''
"""Text helpers."""
import re

SEP = " "
WORD = re.compile(r"\\w+")
DEFAULT_LIMIT = 10


def clean_text(text):
    """Lower-case words joined by SEP."""
    return SEP.join(WORD.findall(text.lower()))


def tokenize(text):
    return clean_text(text).split(SEP)


def unused(text):
    return text * 2


class Scaler:
    """Multiplies values."""

    factor = 2

    def scale(self, values):
        return [v * self.factor for v in values]
'''

TRAINING = '''
"""Steps under test."""
import fp_helpers
from fp_helpers import Scaler, tokenize
from tests.fingerprint_cases.fake_step import step

THRESHOLD = 0.5
normalize = lambda s: s.strip()


def keep(score):
    # Scores above the threshold survive.
    return score > THRESHOLD


@step(retries=1)
def train(texts, limit=fp_helpers.DEFAULT_LIMIT):
    """Train on texts."""
    words = [fp_helpers.clean_text(normalize(t)) for t in texts]
    tokens = tokenize(" ".join(words))
    scaled = Scaler().scale([len(t) for t in tokens])
    return [s for s in scaled if keep(s)][:limit]


def only_tokenize(text):
    return tokenize(text)


def local_imports(texts):
    import fp_helpers as h
    from fp_helpers import tokenize as tok
    return [tok(h.clean_text(t)) for t in texts]


def make_scaler(factor):
    def scale(values):
        return [v * factor for v in values]
    return scale
'''

BASE = {"fp_helpers.py": HELPERS, "fp_training.py": TRAINING}


def edited(file: str, old: str, new: str, files: dict[str, str] | None = None) -> dict[str, str]:
    files = dict(files or BASE)
    assert old in files[file], f"template {file} has no {old!r}"
    files[file] = files[file].replace(old, new)
    return files


class Loader:
    """Writes module versions to fresh directories and imports them.

    A version stays importable (on ``sys.path`` and in ``sys.modules``) until
    the next one is loaded, so local imports inside a step resolve to it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = itertools.count()
        self.names: list[str] = []
        self.path: str | None = None

    def __call__(self, files: dict[str, str], module: str = "fp_training") -> types.ModuleType:
        self.close()
        directory = self.write(files)
        self.path = str(directory)
        sys.path.insert(0, self.path)
        importlib.invalidate_caches()
        before = set(sys.modules)
        loaded = importlib.import_module(module)
        self.names = sorted(set(sys.modules) - before)
        return loaded

    def write(self, files: dict[str, str]) -> Path:
        directory = self.root / f"v{next(self.versions)}"
        directory.mkdir()
        for name, text in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)  # a package's modules
            (directory / name).write_text(textwrap.dedent(text).lstrip())
        return directory

    def close(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)
        self.names = []
        if self.path in sys.path:
            sys.path.remove(self.path)


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Loader]:
    loader = Loader(tmp_path)
    yield loader
    loader.close()


def fp_of(load: Loader, files: dict[str, str], name: str = "train") -> CodeFingerprint:
    return fingerprint(getattr(load(files), name))


def changed_parts(a: CodeFingerprint, b: CodeFingerprint) -> set[str]:
    return {k for k in a.parts.keys() | b.parts.keys() if a.parts.get(k) != b.parts.get(k)}


# -- what is covered ---------------------------------------------------------------------------


def test_parts_of_a_step(load: Loader) -> None:
    parts = fp_of(load, BASE).parts
    assert set(parts) == {
        "<self>",
        "keep",
        "THRESHOLD",
        "normalize",
        "fp_helpers.clean_text",
        "fp_helpers.tokenize",
        "fp_helpers.Scaler",
        "fp_helpers.SEP",
        "fp_helpers.WORD",
    }
    # Default argument values count in the step's own part, not as globals.
    assert "fp_helpers.DEFAULT_LIMIT" not in parts and "fp_helpers.unused" not in parts


@pytest.mark.parametrize(
    ("file", "old", "new", "part", "step"),
    [
        ("fp_training.py", "[:limit]", "[: limit + 1]", "<self>", "train"),
        ("fp_training.py", "return score > THRESHOLD", "return score >= THRESHOLD", "keep", "train"),
        ("fp_helpers.py", "text.lower()", "text.upper()", "fp_helpers.clean_text", "train"),
        ("fp_helpers.py", "(text).split(SEP)", "(text).split()", "fp_helpers.tokenize", "train"),
        ("fp_helpers.py", "v * self.factor", "v + self.factor", "fp_helpers.Scaler", "train"),
        ("fp_helpers.py", "factor = 2", "factor = 3", "fp_helpers.Scaler", "train"),
        ("fp_training.py", "THRESHOLD = 0.5", "THRESHOLD = 0.6", "THRESHOLD", "train"),
        ("fp_helpers.py", 'SEP = " "', 'SEP = "_"', "fp_helpers.SEP", "train"),
        ("fp_helpers.py", r'r"\w+"', r'r"\w*"', "fp_helpers.WORD", "train"),
        ("fp_training.py", "s.strip()", "s.lstrip()", "normalize", "train"),
        ("fp_helpers.py", "text.lower()", "text.upper()", "fp_helpers.clean_text", "only_tokenize"),
        ("fp_helpers.py", "text.lower()", "text.upper()", "fp_helpers.clean_text", "local_imports"),
        ("fp_helpers.py", "(text).split(SEP)", "(text).split()", "fp_helpers.tokenize", "local_imports"),
    ],
    ids=[
        "step body", "same-module helper", "helper via module attribute", "helper via from-import",
        "method of a used class", "class attribute", "module constant", "constant of a helper",
        "regex of a helper", "module-level lambda",
        "helper of a helper", "local import of a module", "local from-import",
    ],
)  # fmt: skip
def test_edits_change_the_digest_and_name_the_part(
    load: Loader, file: str, old: str, new: str, part: str, step: str
) -> None:
    before = fp_of(load, BASE, step)
    after = fp_of(load, edited(file, old, new), step)
    assert after.digest != before.digest
    assert changed_parts(before, after) == ({part} if part else set())


def test_the_steps_own_default_is_left_to_the_parameter_it_binds(load: Loader) -> None:
    """Every call binds the step's defaults as parameters, which the key holds already."""
    before = fp_of(load, BASE)
    after = fp_of(load, edited("fp_helpers.py", "DEFAULT_LIMIT = 10", "DEFAULT_LIMIT = 11"))
    assert (after.digest, after.parts) == (before.digest, before.parts)


@pytest.mark.parametrize(
    "files",
    [
        edited("fp_training.py", "    tokens = tokenize", "    # split into words\n    tokens = tokenize"),
        edited("fp_helpers.py", "def tokenize(text):\n", "def tokenize(text):  # a comment\n"),
        edited("fp_training.py", '"""Train on texts."""', '"""Train on texts, better said."""'),
        edited("fp_training.py", '    """Train on texts."""\n', ""),
        edited("fp_helpers.py", '"""Multiplies values."""', '"""Scales."""'),
        edited("fp_training.py", "def keep(score):\n", 'def keep(score):\n    """Docs."""\n'),
        edited("fp_training.py", "    tokens = tokenize", "\n\n    tokens = tokenize"),
        edited("fp_training.py", '"""Steps under test."""', '"""Steps under test."""\n' + "\n" * 30),
        edited("fp_helpers.py", '"""Text helpers."""', '"""Text helpers."""\n# moved\n' * 5),
        edited("fp_training.py", "\n    ", "\n  "),
        edited("fp_training.py", "@step(retries=1)", "@step(retries=5, timeout=30.0)"),
        edited("fp_training.py", "@step(retries=1)\n", ""),
        edited("fp_helpers.py", "return text * 2", "return text * 3"),
        edited("fp_training.py", "s: s.strip()", "s:(s.strip( ))", edited("fp_training.py", "[:limit]", "[ : limit]")),
    ],
    ids=[
        "comment in step", "comment in helper", "step docstring", "step docstring removed",
        "class docstring", "docstring added to helper", "blank lines", "code moved down",
        "helper moved down", "reindented", "decorator arguments", "decorator removed",
        "unused helper edited", "spacing",
    ],
)  # fmt: skip
def test_formatting_and_settings_keep_the_digest(load: Loader, files: dict[str, str]) -> None:
    before = fp_of(load, BASE)
    after = fp_of(load, files)
    assert after.digest == before.digest
    assert after.parts == before.parts


def test_renaming_the_step_keeps_the_digest(load: Loader) -> None:
    before = fp_of(load, BASE)
    after = fp_of(load, edited("fp_training.py", "def train(", "def fit("), "fit")
    assert after.digest == before.digest


def test_a_step_is_fingerprinted_through_its_function(load: Loader) -> None:
    module = load(BASE)
    assert getattr(module.train, "_is_orchestrator_step", False) is True
    assert fingerprint(module.train) == fingerprint(module.train.__wrapped__)


def test_code_root_is_what_fingerprint_takes(load: Loader) -> None:
    """``@step`` refuses exactly the callables ``fingerprint`` cannot take, using ``code_root``."""
    import functools

    module = load(BASE)
    fn = module.train.__wrapped__
    bound = types.MethodType(fn, object())
    taken = [fn, module.train, bound, functools.partial(fn, 1), functools.partial(bound)]
    assert all(code_root(c) is fn for c in taken)
    class Model:
        def __call__(self, x: int) -> int:
            return x

    for refused in (Model, Model(), len, staticmethod(fn), classmethod(fn), 3):
        assert code_root(refused) is None
        with pytest.raises(TypeError, match="takes a function or a step"):
            fingerprint(refused)  # type: ignore[arg-type]


def test_closure_values_count(load: Loader) -> None:
    module = load(BASE)
    assert fingerprint(module.make_scaler(2)).digest == fingerprint(module.make_scaler(2)).digest
    assert fingerprint(module.make_scaler(2)).digest != fingerprint(module.make_scaler(3)).digest


def test_module_values_are_rehashed_on_every_call(load: Loader) -> None:
    module = load(BASE)
    before = fingerprint(module.train)
    module.THRESHOLD = 0.9  # a long-lived process may change a constant between runs
    after = fingerprint(module.train)
    assert changed_parts(before, after) == {"THRESHOLD"}


# -- where the code lives ----------------------------------------------------------------------


def _import_as(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)  # the real __main__ must come back: multiprocessing needs it
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            del sys.modules[name]
        else:
            sys.modules[name] = previous
    return module


def test_same_source_under_other_module_names_gives_the_same_digest(load: Loader) -> None:
    reference = load(BASE)  # also puts fp_helpers on sys.path
    directory = Path(load.path or "")
    as_package = _import_as(directory / "fp_training.py", "pipelines.training")
    as_script = _import_as(directory / "fp_training.py", "__main__")
    copy = load.write({"training_copy.py": TRAINING}) / "training_copy.py"
    as_copy = _import_as(copy, "training")
    digests = {fingerprint(m.train).digest for m in (as_package, as_script, as_copy)}
    assert digests == {fingerprint(reference.train).digest}


def test_running_as_a_script_gives_the_same_digest(load: Loader) -> None:
    script = TRAINING + (
        "\nif __name__ == '__main__':\n"
        "    from orchestrator.fingerprint import fingerprint\n"
        "    print(fingerprint(train).digest)\n"
    )
    module = load({**BASE, "fp_training.py": script})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), load.path or ""])}
    out = subprocess.run(
        [sys.executable, str(Path(module.__file__ or ""))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == fingerprint(module.train).digest


def test_an_installed_module_run_with_python_m_gives_the_same_digest(tmp_path: Path) -> None:
    # Its own helpers count as the package's (by version) plus which object each name binds;
    # under ``python -m`` they are defined in ``__main__``, which must bind as the import does.
    package = tmp_path / "site-packages" / "fp_installed"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(textwrap.dedent("""
        def helper(x):
            return x + 1

        def train(x):
            return helper(x)

        if __name__ == "__main__":
            from orchestrator.fingerprint import fingerprint
            print(fingerprint(train).digest)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(package.parent)])}
    imported = "from fp_installed.train import train; from orchestrator.fingerprint import fingerprint; " \
               "print(fingerprint(train).digest)"
    digests = {
        subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=True,
                       cwd=tmp_path).stdout.strip()
        for args in (["-m", "fp_installed.train"], ["-c", imported])
    }
    assert len(digests) == 1


def test_code_without_source_uses_bytecode() -> None:
    def compiled(source: str) -> Callable[..., Any]:
        namespace: dict[str, Any] = {"__name__": "generated"}
        exec(compile(textwrap.dedent(source), "<generated>", "exec", dont_inherit=True), namespace)  # noqa: S102 - code without a source file
        return namespace["run"]  # type: ignore[no-any-return]

    base = "LIMIT = 3\ndef run(x):\n    '''Doc.'''\n    return [i * 2 for i in x][:LIMIT]\n"
    same = "\n\nLIMIT = 3\ndef run(x):\n    # comment\n    return [i * 2 for i in x][:LIMIT]\n"
    other = "LIMIT = 3\ndef run(x):\n    return [i * 3 for i in x][:LIMIT]\n"
    other_limit = base.replace("LIMIT = 3", "LIMIT = 4")
    digest = fingerprint(compiled(base)).digest
    assert fingerprint(compiled(same)).digest == digest
    assert fingerprint(compiled(other)).digest != digest
    assert fingerprint(compiled(other_limit)).digest != digest
    assert "LIMIT" in fingerprint(compiled(base)).parts


def test_source_edited_on_disk_after_import(load: Loader) -> None:
    original = fp_of(load, BASE)
    semantic = edited("fp_training.py", "[:limit]", "[: limit + 1]")
    edited_digest = fp_of(load, semantic).digest

    def edit_on_disk(module: types.ModuleType, files: dict[str, str]) -> None:
        path = Path(module.__file__ or "")
        path.write_text(textwrap.dedent(files["fp_training.py"]).lstrip())
        later = time.time() + 5
        os.utime(path, (later, later))  # make sure linecache sees a new file

    module = load(BASE)
    edit_on_disk(module, edited("fp_training.py", "    tokens", "    # note\n    tokens"))
    assert fingerprint(module.train).digest == original.digest  # the source still matches

    module = load(BASE)
    edit_on_disk(module, semantic)
    stale = fingerprint(module.train).digest  # the running code is the old one
    assert stale != edited_digest


# -- libraries, recursion, errors ---------------------------------------------------------------


def test_installed_packages_count_by_version() -> None:
    for step in (packages.uses_numpy, packages.uses_numpy_function):
        parts = fingerprint(step).parts
        assert set(parts) == {"<self>", "pkg:numpy"}
        assert parts["pkg:numpy"] == np.__version__


def test_standard_library_counts_for_nothing() -> None:
    assert set(fingerprint(packages.uses_stdlib).parts) == {"<self>"}


def test_recursion_terminates() -> None:
    assert set(fingerprint(recursion.factorial).parts) == {"<self>"}
    assert set(fingerprint(recursion.is_even).parts) == {"<self>", "is_odd"}
    assert set(fingerprint(recursion.tree_depth).parts) == {"<self>", "Node"}


def test_functions_inside_module_values_are_followed() -> None:
    parts = fingerprint(registry.apply).parts
    assert {"<self>", "TRANSFORMS", "double", "square"} <= set(parts)


def test_functions_behind_decorators_are_followed() -> None:
    parts = fingerprint(decorated.step).parts
    # The user's wrapper code and what it wraps; lru_cache and contextmanager add no code of
    # their own (contextlib's helper carries the wrapped __module__ but lives in the stdlib).
    assert set(parts) == {
        "<self>",
        "scoped",
        "shifted",
        "logged",
        "cached_square",
        "OFFSET",
    }


def test_instances_bring_their_class_and_its_bases() -> None:
    parts = fingerprint(objects.step).parts
    assert set(parts) == {"<self>", "DEFAULT_TREE", "Tree", "recursion.Node"}


def test_module_metadata_is_not_a_constant() -> None:
    # A class body reads __name__ (for __module__); the module's name must not become a part.
    assert set(fingerprint(objects.step_with_local_class).parts) == {"<self>"}


def test_unhashable_module_value_is_named() -> None:
    with pytest.raises(
        UnhashableValueError,
        match=r"module-level value 'PENDING' used by 'guarded' cannot be hashed \(.*generator.*\)\. "
        r"Create it inside the step \(or in a function the step calls\), from a path, URL or setting",
    ):
        fingerprint(unhashable.guarded)
    assert set(fingerprint(unhashable.not_using_the_generator).parts) == {"<self>"}


def test_a_module_level_lock_or_event_is_no_obstacle_and_no_difference() -> None:
    # `with LOCK:` around shared state orders work and holds no data; it used to refuse the step.
    parts = fingerprint(unhashable.with_lock).parts
    assert set(parts) == {"<self>", "REGISTRY_LOCK", "READY"}
    free = fingerprint(unhashable.with_lock).digest
    with unhashable.REGISTRY_LOCK:  # held or free, set or not, a lock is the same to the key
        unhashable.READY.set()
        assert fingerprint(unhashable.with_lock).digest == free
    unhashable.READY.clear()


def test_fingerprint_rejects_non_functions() -> None:
    with pytest.raises(TypeError, match="takes a function or a step"):
        fingerprint(len)


def test_fingerprints_are_the_same_in_every_process() -> None:
    script = (
        "from orchestrator.fingerprint import fingerprint; "
        "from tests.fingerprint_cases import registry, recursion; "
        "print(fingerprint(registry.apply).digest, fingerprint(recursion.tree_depth).digest)"
    )
    outputs = set()
    for seed in ("0", "1", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(out.stdout.strip())
    expected = f"{fingerprint(registry.apply).digest} {fingerprint(recursion.tree_depth).digest}"
    assert outputs == {expected}


def test_is_user_module() -> None:
    assert is_user_module(packages)
    assert is_user_module("tests.fingerprint_cases.packages")
    assert is_user_module(types.ModuleType("made_at_runtime"))
    assert not is_user_module(np)
    assert not is_user_module("json")
    assert not is_user_module(os)
    assert not is_user_module("orchestrator.hashing")
    assert not is_user_module(sys.modules["orchestrator.fingerprint"])


def test_namespace_packages_are_whose_folders_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A namespace package (no __init__.py) has no __file__: an installed one (opentelemetry,
    # google) passed for the user's code, and travelled to workers by value, dragging along
    # everything beneath it (a ContextVar cannot be pickled).
    installed = tmp_path / "venv" / "site-packages"
    user = tmp_path / "project" / "src"
    for root, name in ((installed, "fp_ns_lib"), (user, "fp_ns_own"), (installed, "fp_ns_mixed"),
                       (user, "fp_ns_mixed")):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / f"part_{root.name.replace('-', '_')}.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(installed))
    monkeypatch.syspath_prepend(str(user))
    assert not is_user_module("fp_ns_lib")  # before it is imported: by its spec
    lib, own, mixed = (importlib.import_module(n) for n in ("fp_ns_lib", "fp_ns_own", "fp_ns_mixed"))
    assert not is_user_module(lib)
    assert not is_user_module(importlib.import_module("fp_ns_lib.part_site_packages"))
    assert is_user_module(own) and is_user_module("fp_ns_own.part_src")
    assert is_user_module(mixed)  # one folder of the user's: the walk goes on into its modules
    assert not is_user_module(importlib.import_module("fp_ns_mixed.part_site_packages"))
    for name in [n for n in sys.modules if n.startswith("fp_ns_")]:
        del sys.modules[name]


def test_refingerprinting_parses_no_source_again(load: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every build fingerprints its steps: unchanged code is not read or parsed a second time.

    (What it costs is measured by the benchmarks, not here: a timed test fails on a busy machine.)
    """
    from orchestrator import code_analysis
    from orchestrator import fingerprint as fingerprint_module

    module = load(BASE)
    first = fingerprint(module.train)
    read: list[object] = []
    for owner, name in ((code_analysis, "_source_digest"), (fingerprint_module, "module_source_digest")):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _real=real, **k: read.append(a) or _real(*a, **k))
    for _ in range(3):
        assert fingerprint(module.train).digest == first.digest
    assert read == []


# -- library code Python or a library puts in the user's classes ---------------------------------

WRAPPED = {
    "fp_wrapped.py": '''
import enum

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


def shift(x):
    return x + 1


class Shift(TransformerMixin, BaseEstimator):
    """scikit-learn wraps `transform` in a function of its own (set_output)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return shift(np.asarray(X))


class Kind(enum.Enum):
    SUM = "sum"
    MAX = "max"


def train(rows, kind=Kind.SUM):
    return Shift().fit_transform(rows) if kind is Kind.SUM else Kind.MAX
''',
}


@pytest.fixture
def libraries() -> None:
    """Import what fp_wrapped imports first: the loader unloads the modules a version's import added."""
    import numpy  # noqa: F401
    import sklearn.base  # noqa: F401


@pytest.mark.usefixtures("libraries")
def test_a_method_under_a_librarys_wrapper_counts_what_it_calls(load: Loader) -> None:
    # scikit-learn's set_output wraps Shift.transform: only the wrapper's reads were followed, so
    # editing `shift`, which transform calls, left the step cached on the old result.
    before = fingerprint(load(WRAPPED, "fp_wrapped").train)
    assert "shift" in before.parts
    after = fingerprint(load(edited("fp_wrapped.py", "return x + 1", "return x + 2", WRAPPED), "fp_wrapped").train)
    assert changed_parts(before, after) == {"shift"}


@pytest.mark.usefixtures("libraries")
def test_what_library_code_in_a_class_reads_does_not_count(load: Loader) -> None:
    # Enum.__new__ (copied into every enum) reads enum.Flag and enum.EJECT; scikit-learn's wrapper
    # its own helpers; 3.13's dataclass __replace__ reads dataclasses.MISSING: none of it is the
    # user's code, and it changes with each Python or library release.
    parts = fingerprint(load(WRAPPED, "fp_wrapped").train).parts
    assert set(parts) == {"<self>", "Shift", "Kind", "shift", "BaseEstimator", "TransformerMixin",
                          "pkg:numpy", "pkg:scikit-learn"}
