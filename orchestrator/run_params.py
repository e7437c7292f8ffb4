"""The parameters an earlier run recorded, to run its pipeline with them again (``--params-from RUN``).

A run records its parameters as JSON that ``-p`` and ``--params`` take back
(``environment.jsonable``: a dataclass or pydantic config as the object of its
fields, an Enum as its value, a Path or a date as text). This module reads
them for one pipeline and refuses a run of another; it converts nothing:
the caller checks the values against the pipeline's types as a parameters
file's are (``params.convert_params``), so a dataclass comes back a dataclass.
It reads the metadata database only.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.lineage_db import Lineage


@dataclass(frozen=True)
class RecordedParams:
    """What ``run_id`` was given: ``values`` as recorded (JSON), and ``source``, how messages name it."""

    run_id: str
    values: dict[str, Any]

    @property
    def source(self) -> str:
        return f"run {self.run_id[:12]}"

    def for_signature(self, signature: inspect.Signature, pipeline: str) -> tuple[dict[str, Any], str | None]:
        """The values the pipeline still has parameters for, and a note naming those it no longer has.

        A parameter removed since that run cannot be given again, and refusing the run for it would
        leave no way to rebuild the rest: it is left out, and the note says so.
        """
        params = signature.parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return dict(self.values), None
        gone = [name for name in self.values if name not in params]
        if not gone:
            return dict(self.values), None
        kept = {name: value for name, value in self.values.items() if name in params}
        names = ", ".join(f"'{name}' ({_shown(self.values[name])})" for name in gone)
        return kept, (f"{self.source} was given {names}, which pipeline '{pipeline}' no longer takes: "
                      f"left out{'' if len(gone) == 1 else ', each'}.")


def recorded_params(lineage: Lineage, ref: str, pipeline: str, option: str) -> RecordedParams:
    """The parameters the run ``ref`` (an id, a unique prefix, ``latest``, ``latest~N``) of ``pipeline`` recorded.

    ``option`` is how the user wrote it (``--params-from``, ``params_from=``), for the message.

    Raises:
        UserError: an unknown or ambiguous run (``orch show``'s line), or a run of another pipeline.
    """
    if not isinstance(ref, str):
        raise UserError(f"{option} takes a run id, a prefix of one, `latest` or `latest~N`, not "
                        f"{type(ref).__name__} {ref!r}.")
    run_id = lineage.resolve_run(ref.strip())
    row = lineage.run(run_id)
    if row["pipeline"] != pipeline:
        # `latest~N` counts the runs of every pipeline; the user meant, as a rule, this pipeline's.
        back = re.fullmatch(r"\s*latest~(\d+)\s*", ref)
        back_n = int(back.group(1)) if back else 0
        latest = lineage.runs(limit=back_n + 1, pipeline=pipeline)
        own = (f"its latest is {latest[0]['run_id'][:12]}" if latest else
               "it has no run in this store yet")
        if back_n and len(latest) > back_n:
            own += f", its latest~{back_n} {latest[back_n]['run_id'][:12]}"
        raise UserError(f"run {run_id[:12]} is a run of pipeline '{row['pipeline']}', not '{pipeline}': {option} "
                        f"takes a run of '{pipeline}' ({own}; `orch runs --pipeline {pipeline}` lists them).")
    values = row.get("params") or {}
    return RecordedParams(run_id, dict(values) if isinstance(values, dict) else {})


def typed_recorded(recorded: RecordedParams, signature: inspect.Signature, fn: Any, pipeline: str) -> dict[str, Any]:
    """``recorded``'s values as the pipeline's types, checked as a parameters file's are; a parameter
    the pipeline no longer has is left out with a ``UserWarning`` (``RecordedParams.for_signature``).

    Raises:
        ParameterError: a value its type no longer takes, named with the run it came from.
    """
    import warnings

    from orchestrator.params import convert_params

    values, note = recorded.for_signature(signature, pipeline)
    if note:
        warnings.warn(note, UserWarning, stacklevel=6)  # the user's call of run() or plan()
    return convert_params(signature, fn, pipeline, {}, values, source=recorded.source)


def _shown(value: Any) -> str:
    from orchestrator.report import one_line

    return one_line(json.dumps(value, default=str))


def params_from_run(ref: str, signature: inspect.Signature, fn: Any, pipeline: str, *, store: str | None,
                    metadata: str | None) -> dict[str, Any]:
    """``Pipeline.run(params_from=RUN)``: RUN's parameters as the pipeline's types, read from the store.

    The store is opened as ``get_run`` opens it (never created: a store with no runs has none to repeat).

    Raises:
        UserError: no store there, an unknown or ambiguous run, a run of another pipeline, or
            recorded values the pipeline no longer takes.
    """
    from orchestrator.context import Context
    from orchestrator.spelling import PYTHON

    ctx = Context.open(store, metadata, create=False, spelling=PYTHON)
    return typed_recorded(recorded_params(ctx.lineage, ref, pipeline, "params_from="), signature, fn, pipeline)
