"""The run options of ``Pipeline.run`` and ``Pipeline.plan``, checked as Python values.

The CLI's parser gives the runner values of the right kinds; from Python
(a notebook, a test) anything can arrive, and a wrong kind would surface as
a raw ``TypeError`` or ``AttributeError`` from deep in the runner
(``rerun=5``, ``metadata=5``, ``progress=True``) or, worse, be taken at its
truth value (``no_cache="no"`` turns caching off). Each mistake is one
``UserError`` naming the option as it is spelled in Python, with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.report import RunObserver

#: Options ``run`` takes that ``plan`` does not: a plan runs nothing, so it has no executor or progress.
RUN_ONLY = ("executor", "workers", "address", "verbose", "progress")


@dataclass(frozen=True)
class RunOptions:
    """The options of one ``run``/``plan`` call, of the kinds the runner expects."""

    params: dict[str, Any]
    metadata: str | None
    rerun: tuple[str, ...]


def check_options(pipeline: str, method: str, *, params: Any, kwargs: dict[str, Any], metadata: Any,
                  rerun: Any, no_cache: Any) -> RunOptions:
    """The parameters (``params`` merged with keywords), metadata and rerun names, checked.

    Raises:
        UserError: a value of the wrong kind, a parameter given both in
            ``params`` and as a keyword, or (for ``plan``) an option only
            ``run`` takes.
    """
    if params is not None and not isinstance(params, Mapping):
        raise UserError(f"params must be a dict of pipeline parameters, got {_shown(params)}: "
                        f"{pipeline}.{method}(params={{'name': value}}), or pass them as keywords.")
    params = dict(params or {})
    if method == "plan":
        misplaced = next((k for k in RUN_ONLY if k in kwargs), None)
        if misplaced is not None:
            raise UserError(f"{misplaced}= is an option of {pipeline}.run(), not of {pipeline}.plan(): a plan "
                            f"runs nothing. Drop it (or pass params={{'{misplaced}': ...}} if it is a parameter "
                            "of the pipeline).")
    twice = next((k for k in kwargs if k in params), None)
    if twice is not None:
        raise UserError(f"parameter '{twice}' is given twice, in params= ({params[twice]!r}) and as a keyword "
                        f"({kwargs[twice]!r}). Give it once.")
    if metadata is not None and not isinstance(metadata, (str, os.PathLike)):
        raise UserError(f"metadata must be the path of a local folder, got {_shown(metadata)}.")
    if rerun is None:
        names: tuple[Any, ...] | None = ()
    elif isinstance(rerun, str):
        names = (rerun,)
    elif isinstance(rerun, Iterable) and not isinstance(rerun, bytes):
        names = tuple(rerun)
    else:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        step = next((n for n in (names or (rerun,)) if isinstance(getattr(n, "name", None), str)
                     and getattr(n, "_is_orchestrator_step", False)), None)
        hint = f" Pass the step's name: rerun={step.name!r}." if step is not None else ""
        raise UserError(f"rerun names steps to run whatever the cache holds: a name or a list of names "
                        f"(rerun=\"fit\", rerun=[\"fit\", \"evaluate\"]), got {_shown(rerun)}.{hint}")
    check_flag("no_cache", no_cache)
    return RunOptions({**params, **kwargs}, None if metadata is None else os.fspath(metadata), names)


def check_flag(option: str, value: Any) -> None:
    """A yes/no option must be a bool: ``no_cache="no"`` would otherwise turn caching off."""
    if not isinstance(value, bool):
        raise UserError(f"{option} must be True or False, got {_shown(value)}.")


def observer(progress: Any, verbose: bool) -> RunObserver | None:
    """What ``progress=`` asks for: True shows live progress and a summary on stderr, as ``orch run`` does.

    A ``RunObserver`` (``orchestrator.report``) receives the run's events;
    None or False shows nothing.
    """
    from orchestrator.report import ConsoleReporter, RunObserver

    if progress is None or progress is False:
        return None
    if progress is True:
        return ConsoleReporter(verbose=verbose)
    if isinstance(progress, RunObserver):
        return progress
    raise UserError(f"progress must be True (live progress and a summary on stderr), False, or an "
                    f"orchestrator.report.RunObserver, got {_shown(progress)}.")


def _shown(value: Any) -> str:
    """``5 (int)``: the value and its type, short."""
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({type(value).__name__})"
