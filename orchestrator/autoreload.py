"""IPython's ``%autoreload``: a step or pipeline imported by name follows its edited module.

``%autoreload 2`` re-runs an edited module and upgrades the objects imported
from it before (``from flows import training``) in place: an old function
gets the new code. It knows functions and classes, not a ``Step`` or a
``Pipeline``: the notebook's ``training`` kept the old body (a run of it used
the old wiring and recorded it, without a word), and a step called as a plain
function ran its old code, while the module itself held the new ones. Taught
here to upgrade them as it upgrades a function: the old object takes the new
one's attributes.

Nothing is imported: the rule is added only once IPython's extension is loaded
(``%load_ext autoreload``), when a step or pipeline is made or a run starts.
"""

from __future__ import annotations

import sys
from typing import Any

_EXTENSION = "IPython.extensions.autoreload"
# The extension's list of rules this module added its rule to (another after `%reload_ext autoreload`).
_taught: list[Any] = []


def teach_autoreload() -> None:
    """Add the rule upgrading steps and pipelines to IPython's autoreload, if it is loaded (once)."""
    extension = sys.modules.get(_EXTENSION)
    if extension is None:
        return
    rules = getattr(extension, "UPDATE_RULES", None)
    if not isinstance(rules, list) or (_taught and _taught[0] is rules):
        return
    rules.insert(0, (_both_ours, _upgrade))
    _taught[:] = [rules]


def _both_ours(old: Any, new: Any) -> bool:
    """Whether ``old`` and ``new`` are two definitions of a step, or of a pipeline.

    Told by the classes' markers, not by importing them (this module sits under ``step``).
    """
    kind = type(old)
    if kind is not type(new):
        return False
    try:
        return (getattr(kind, "_is_orchestrator_step", False) is True
                or getattr(kind, "_is_orchestrator_pipeline", False) is True)
    except Exception:  # noqa: BLE001 - a class of someone else's whose metaclass answers oddly: not ours
        return False


def _upgrade(old: Any, new: Any) -> None:
    """Make ``old`` the new definition: its function, name, settings and signature."""
    state = old.__dict__
    state.clear()
    state.update(new.__dict__)
