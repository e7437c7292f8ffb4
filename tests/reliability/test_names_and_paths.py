"""Issue 5, item 12: fuzzed step, run and artifact names and CLI arguments never escape the store.

Hypothesis generates names mixing ordinary text with ``../``, absolute
paths, NUL, 4 KB names, Unicode look-alikes and bidi controls. Each one is
given to the store's path functions, to ``orch`` commands that take a name
or a path (in-process, so NUL can be passed), and as a step and output name
of a pipeline that is then run. Every path the store builds stays under it,
and a name that cannot be used is rejected with one clear line (exit 2, no
traceback). A store reached through a symlink keeps everything under its
target. Model names wait for the model registry (issue 5, items 13-14).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import pipeline, step
from orchestrator.cli import main
from orchestrator.errors import OrchestratorError, StoreError
from orchestrator.store import ArtifactStore

NASTY = ["../", "../../etc/passwd", "/etc/passwd", "/", "..", ".", "a/../../b", "\0", "a\0b", "x" * 4096,
         "\uff0e\uff0e\uff0f", "\u2024\u2024/", "ｒｕｎ", "\u202eexe.txt", "~", "$HOME", "%2e%2e%2f", "\\..\\",
         "C:\\Windows", "CON", "\udcff", "-v", "--store", "latest", ":", "a:b:c", "*", "?", "\n", " "]
names = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.builds(lambda a, b, c: a + b + c, st.sampled_from(NASTY), st.text(max_size=10), st.sampled_from(NASTY)),
    st.just("x" * 4096),
)

COUNTS = {"inputs": 0, "rejected": 0, "escapes": 0}


def _orch(store: Path, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code: int | str = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(["--store", str(store), *args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # anything escaping main() is a crash
        return -1, f"{type(exc).__name__}: {exc}"
    return int(code), err.getvalue()


def _under(path: Path, root: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    real = root / "real-store"
    real.mkdir()
    (root / "store").symlink_to(real)  # every command goes through a symlinked store
    project = root / "project"
    project.mkdir()
    (project / "p.py").write_text(
        "from orchestrator import pipeline, step\n\n@step\ndef a(n: int) -> int:\n    return n\n\n"
        "@pipeline\ndef p(n: int = 1):\n    return a(n)\n")
    assert _orch(root / "store", "run", str(project / "p.py"))[0] == 0
    return root


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_cli_names_are_rejected_cleanly(world, name):
    store = world / "store"
    before = set(world.rglob("*"))
    for args in (["show", name], ["logs", f"latest:{name}"], ["logs", name], ["lineage", name],
                 ["lineage", f"latest:{name}"], ["run", name], ["run", str(world / "project" / "p.py"),
                 "-p", f"{name}=1"], ["run", str(world / "project" / "p.py"), "--rerun", name],
                 ["plan", str(world / "project" / "p.py"), "--params", name]):
        COUNTS["inputs"] += 1
        code, err = _orch(store, *args)
        verbose = "-v" in args or "--verbose" in args  # asks for tracebacks (main() looks for it anywhere)
        clean = code in (0, 1, 2) and ("Traceback" not in err or verbose)
        if code == 2:
            COUNTS["rejected"] += 1
        created = [p for p in set(world.rglob("*")) - before
                   if not _under(p, world / "real-store") and "__pycache__" not in p.parts]
        if not clean or created:
            COUNTS["escapes"] += 1
        assert clean, (args, code, err[-500:])
        assert not created, created


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_store_paths_stay_under_the_store(world, name):
    store = ArtifactStore(world / "store")
    COUNTS["inputs"] += 1
    try:
        path = store.path_of(name)
    except StoreError as exc:
        COUNTS["rejected"] += 1
        assert "\n" not in str(exc) and "invalid artifact digest" in str(exc)
        for op in (store.has, store.verify, store.delete, store.read_header):
            with pytest.raises(StoreError):
                op(name)
        return
    if not _under(path, world / "real-store" / "objects"):
        COUNTS["escapes"] += 1
    assert _under(path, world / "real-store" / "objects")


def _utf8(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step_name=names.filter(_utf8), output=names.filter(_utf8))
def test_step_and_output_names_never_become_paths(world, step_name, output):
    COUNTS["inputs"] += 1
    outside = set(world.parent.iterdir())
    store = world / "store" / f"fuzz-{COUNTS['inputs']}"  # a fresh store: see test_renamed_output below
    try:
        fn = step(name=step_name, outputs=(output, "other"))(_two)
        built = pipeline(name="fuzzed")(lambda: fn(3))
        run = built.run(store=str(store))
    except OrchestratorError as exc:
        COUNTS["rejected"] += 1
        assert "\n" not in str(exc).strip() or "step" in str(exc)
        return
    assert run.status == "succeeded", run.error
    escaped = set(world.parent.iterdir()) - outside
    if escaped:
        COUNTS["escapes"] += 1
    assert not escaped


def _two(n):
    return n, n + 1


def test_step_name_that_is_not_utf8_is_rejected(tmp_path):
    with pytest.raises(OrchestratorError):
        fn = step(name="bad\udcff")(lambda n: n)
        pipeline(name="surrogate")(lambda: fn(1)).run(store=str(tmp_path / "s"))


def test_renamed_output_is_a_cache_miss(tmp_path):
    for outputs in (("first", "other"), ("renamed", "other")):
        fn = step(name="renaming", outputs=outputs)(_two)
        run = pipeline(name="renaming")(lambda fn=fn: fn(3)).run(store=str(tmp_path / "s"))
        assert run.status == "succeeded"


def test_names_and_paths_figure(figure):
    """Runs last in this module: prints the figure line of the three fuzz tests above."""
    if not COUNTS["inputs"]:
        pytest.skip("counts the fuzz tests above; run the whole module")
    figure(bad_inputs=COUNTS["inputs"], rejected=COUNTS["rejected"], escapes=COUNTS["escapes"])
    assert COUNTS["inputs"] >= 500 and COUNTS["escapes"] == 0
