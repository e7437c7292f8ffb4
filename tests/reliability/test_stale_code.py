"""Issue 5, item 6: the stale-code matrix, as one sequence of edits on one store.

Editing a step's body, a helper in the same module, a helper in another
project module, a global constant, a closure variable or a default argument
re-runs exactly the steps that depend on it; a comment-only edit re-runs
nothing. A fault here is one edit; it is lost when a stale result is served
(a dependent step stays cached) or survives only if nothing else re-runs.
"""

from __future__ import annotations

from tests.conftest import edit_file
from tests.test_code_changes import EDITS

COMMENT_ONLY = [
    ("other_helpers.py", "def triple(x):\n", "def triple(x):\n    # a comment, nothing else\n", set()),
    ("edits.py", "def uses_const(x):\n", "def uses_const(x):  # a trailing comment\n", set()),
]


def test_stale_code_matrix(orch, calls, project, figure):
    first = orch("run", "edits.py")
    assert first.returncode == 0, first.stderr
    faults = survived = lost = 0
    wrong = []
    for file, old, new, expected in [*EDITS, *COMMENT_ONLY]:
        calls.clear()
        edit_file(project, file, old, new)
        result = orch("run", "edits.py")
        ran = calls.ran()
        faults += 1
        lost += bool(expected - ran)  # a dependent served from the cache: stale
        survived += result.returncode == 0 and ran == expected
        if ran != expected:
            wrong.append((file, new.strip()[:30], sorted(ran), sorted(expected)))
    figure(faults=faults, survived=survived, data_lost=lost)
    assert not wrong and survived == faults and lost == 0, wrong
