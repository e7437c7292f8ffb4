"""Which store a folder is: a random id in ``<store>/store-id``, checked by workers before they write.

A worker on another machine opens the store by the path the driver gives it.
On a cluster where each machine has its own folder at that path (``/data/store``
local on every node) the path alone proves nothing: the worker would write the
step's outputs into its own folder, where the driver never looks, and the run
would fail later, or succeed with objects missing. So a run gives its store an
id (once, when the store has none: made atomically, so two runs starting on a
new store at once agree on one), sends it with each task, and a worker compares
it with the id it finds at that path before it writes anything.

The check reads the marker once per process and store; later tasks cost a
dictionary lookup. The driver's own process (the sequential executor) is known
to be right from the start. A store this process cannot write (a read-only
mount) gets no id, and its workers are not checked: they could not write there
either.

URL stores (``s3://``, ``file://``) have a marker too, read and written through
fsspec: a ``file://`` URL names a local folder on each machine, exactly like a
path. On an object store two runs creating a new store in the same instant may
each write an id; the one read back afterwards is the one used.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

from orchestrator.errors import StoreMismatchError, StoreUnreachableError
from orchestrator.files import link_no_clobber, remove_leftovers_of_dead
from orchestrator.remote_store import FsspecStore
from orchestrator.store import ArtifactStore

MARKER = "store-id"

# store location -> the id this process found (or gave) there. Only matches are kept: a worker
# whose folder was wrong checks again on its next task, so mounting the right one fixes it.
_known: dict[str, str] = {}


def read_id(store: ArtifactStore) -> str | None:
    """The id in ``store``'s marker, or None if it has none (a store older than markers, or empty).

    Raises:
        OSError: the marker exists but cannot be read.
    """
    try:
        if isinstance(store, FsspecStore):
            text = bytes(store.fs.cat_file(f"{store.location_path}/{MARKER}")).decode("utf-8", "replace")
        else:
            text = (store.root / MARKER).read_text("utf-8", "replace")
    except FileNotFoundError:
        return None
    return text.strip() or None


def ensure_id(store: ArtifactStore) -> str | None:
    """``store``'s id, giving it one if it has none; None if this process cannot write it (read-only).

    Called by a run before any task is sent: this process then knows the id without reading it again.
    """
    try:
        found = read_id(store)
        if found is None:
            _write(store, secrets.token_hex(16))
            found = read_id(store)  # another run may have given it its id first: that one counts
    except OSError:
        return None  # a read-only store: nothing will be written to it, by this run or its workers
    if found is not None:
        _known[store.location] = found
    return found


def _write(store: ArtifactStore, new_id: str) -> None:
    """Write ``new_id`` as the marker unless one exists (never replacing it)."""
    body = f"{new_id}\n".encode()
    if isinstance(store, FsspecStore):
        path = f"{store.location_path}/{MARKER}"
        if not store.fs.exists(path):
            store.fs.makedirs(store.location_path, exist_ok=True)
            store.fs.pipe_file(path, body)
        return
    store.root.mkdir(parents=True, exist_ok=True)
    _sweep_dead_temps(store.root)
    temp = store.root / f".{MARKER}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        temp.write_bytes(body)
        if store.fsync:
            with open(temp, "rb+") as f:
                os.fsync(f.fileno())
        link_no_clobber(temp, Path(store.root / MARKER))
    finally:
        temp.unlink(missing_ok=True)


# The temp files _write makes (and no other file): ``.store-id.<pid>-<8 hex digits>.tmp``.
_TEMP = re.compile(rf"\.{re.escape(MARKER)}\.(\d+)-[0-9a-f]{{8}}\.tmp")


def _sweep_dead_temps(root: Path) -> None:
    """Remove the marker's temp files of dead processes from ``root``.

    A run killed (SIGKILL, the OOM killer) between writing its temp file and
    linking it left it in the store's root for ever. Looked for only while
    the store has no id, when the next run writes one: one listing, once.
    """
    remove_leftovers_of_dead(root, _TEMP)


def check(store: ArtifactStore, expected: str | None, step_name: str) -> None:
    """Refuse to let ``step_name`` write into ``store`` unless it is the run's store (id ``expected``).

    Raises:
        StoreMismatchError: the marker at the store's location is missing or holds another id.
        StoreUnreachableError: the marker cannot be read here.
    """
    if expected is None or _known.get(store.location) == expected:
        return
    try:
        found = read_id(store)
    except OSError as exc:
        raise StoreUnreachableError(
            f"cannot read the store id {store.location}/{MARKER} on {socket.gethostname()}, where step "
            f"'{step_name}' ran: {exc}. Every worker must be able to read and write the run's store.") from None
    if found == expected:
        _known[store.location] = found
        return
    what = "it has no store id" if found is None else f"id {found}"
    raise StoreMismatchError(
        f"the folder {store.location} on {socket.gethostname()}, where step '{step_name}' ran, is another store "
        f"than the run's ({what}, expected {expected}): mount the run's store at that path, or use a shared URL "
        "store (s3://bucket/store; see docs/execution.md).")
