"""The records a run hands to the metadata database, and how a run's process is recognised later.

Plain data: a step's record (status, key and its parts, inputs and outputs),
its attempts, a cached output. ``process_start_token`` lets a later command
tell the run's own process from a newer one that reused its pid, so that a
run whose process died is shown as interrupted. This module must not touch
the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from orchestrator.files import zombie


@dataclass(frozen=True)
class DamagedValue:
    """A JSON value of the metadata database that does not decode to its kind (``orch doctor``)."""

    table: str
    column: str
    where: str  # SQL naming its row: ``run_id = '1a2b'``
    key: Any  # the first column naming its row (a run id, a digest, a cache key)
    detail: str


class CachedOutput(NamedTuple):
    """One output recorded under a cache key: its name, digest and whether it is inline.

    A named tuple: a cached re-run makes one per output per node.
    """

    name: str
    digest: str
    inline: bool
    type_name: str = ""


@dataclass
class StepRecord:
    """Everything recorded about one node in one run."""

    run_id: str
    node: str
    step: str
    site: str
    status: str
    reason: str = ""
    position: int | None = None
    key: str | None = None
    key_parts: dict[str, Any] | None = None
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    # Sequences, empty tuples by default: a record is made per node per run, and is assigned, not appended to.
    inputs: Sequence[tuple[str, str, str]] = ()   # (input name, digest, node of this run that made it)
    outputs: Sequence[tuple[str, str]] = ()  # (output name, digest)
    files: Sequence[tuple[str, tuple[str, str]]] = ()  # (input name, (path, digest))
    # More keys for the same result: the key the node has once a file it wrote exists (see dag.rekey).
    also_keys: Sequence[tuple[str, str]] = ()  # (key, its parts as JSON)

    key_parts_json: str | None = None
    origin: str | None = None  # a cached node: "RUN:node" of the step run whose result it reused

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    def parts_json(self) -> str | None:
        if self.key_parts_json is None and self.key_parts:
            self.key_parts_json = json.dumps(self.key_parts)
        return self.key_parts_json


@dataclass(slots=True)
class AttemptRecord:
    """One attempt of a step: its outcome and what it printed and logged (not frozen: one per step run)."""

    attempt: int
    status: str
    started: float
    ended: float
    error: str | None = None
    traceback: str | None = None
    stdout: str = ""
    stderr: str = ""
    logs: str = ""


def process_start_token(pid: int) -> str:
    """A token that tells a live process from a later one that reused its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, token: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if zombie(pid):  # killed, not yet reaped: its run is over
        return False
    return not token or process_start_token(pid) in ("", token)
