"""Which metadata databases use a store, recorded in the store itself (``<store>/databases/``).

A store kept apart from its metadata database (a URL, or ``--metadata``) can be
shared: two users, or one user on two machines, each with a database of their
own, reading and writing one object store. Each database knows only its own
runs, so to one of them the other's objects look like orphans, and an object
both produced (same digest) looks unreferenced once its own runs are dropped:
``orch cache gc`` would delete what the other database still records, and
``orch doctor`` would call it a crash's leftovers. So each run that writes a
store apart from its database leaves one small file there naming its database
(``databases/<id>.json``: host and path), and gc and doctor ask whether any
other database uses the store before they treat an object as nobody's.

A database inside the store folder (the default layout) is counted too, by its
file, so that a ``--metadata`` user of such a folder sees its owner.
Registration is best effort: a store that cannot be written fails the run's
first upload anyway, with a clearer message than this file could give.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

from orchestrator.remote_store import FsspecStore
from orchestrator.store import ArtifactStore

FOLDER = "databases"


def _entry_name(database: Path) -> str:
    """This database's file name: stable across runs, distinct per host and path."""
    ident = f"{socket.gethostname()}\0{database.absolute()}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16] + ".json"


def register(store: ArtifactStore, database: Path) -> None:
    """Record in ``store`` that ``database`` uses it (once; later calls cost one existence check)."""
    name = _entry_name(database)
    body = json.dumps({"host": socket.gethostname(), "database": str(database.absolute()),
                       "since": time.time()}).encode()
    try:
        if isinstance(store, FsspecStore):
            path = f"{store.location_path}/{FOLDER}/{name}"
            if not store.fs.exists(path):
                store.fs.makedirs(f"{store.location_path}/{FOLDER}", exist_ok=True)
                store.fs.pipe_file(path, body)
            return
        folder = store.root / FOLDER
        if (folder / name).exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{name}.{os.getpid()}.tmp"
        temp.write_bytes(body)
        os.replace(temp, folder / name)
    except OSError:
        return  # best effort: see the module docstring


def other_databases(store: ArtifactStore, database: Path) -> list[str]:
    """The other metadata databases that use ``store``, as ``host:path`` (or a path on this host)."""
    mine = _entry_name(database)
    found: list[str] = []
    if not isinstance(store, FsspecStore):
        inside = store.root / "metadata.db"
        if inside.is_file() and inside.absolute() != database.absolute():
            found.append(str(inside))
    for name, body in _entries(store):
        if name == mine:
            continue
        record = _record(body)
        found.append(f"{record['host']}:{record['database']}" if record else name)
    return found


def gone_from_this_host(store: ArtifactStore, database: Path) -> list[tuple[str, str]]:
    """(database path, registration file) of the other databases registered from this host whose file is gone.

    A store moved with its ``--metadata`` folder (``mv project elsewhere``) keeps the file naming the
    database at its old path, and would otherwise be shared with itself for ever. Their files are
    named, not removed: a database on a share that is not mounted looks gone too.
    """
    mine, host = _entry_name(database), socket.gethostname()
    gone = []
    for name, body in _entries(store):
        record = _record(body)
        if name != mine and record and record["host"] == host and not os.path.exists(record["database"]):
            gone.append((str(record["database"]), f"{store.location}/{FOLDER}/{name}"))
    return gone


def _record(body: bytes) -> dict[str, str] | None:
    """A registration file's host and database, or None if it does not read as one (still another database)."""
    try:
        record = json.loads(body)
        return {"host": str(record["host"]), "database": str(record["database"])}
    except (ValueError, TypeError, KeyError):
        return None


def _entries(store: ArtifactStore) -> list[tuple[str, bytes]]:
    """(file name, contents) of every registration file in ``store``."""
    try:
        if isinstance(store, FsspecStore):
            paths = [str(p) for p in store.fs.ls(f"{store.location_path}/{FOLDER}", detail=False)]
            return [(p.rsplit("/", 1)[-1], bytes(store.fs.cat_file(p)))
                    for p in sorted(paths) if p.endswith(".json")]
        folder = store.root / FOLDER
        return [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.json"))]
    except (FileNotFoundError, NotADirectoryError):
        return []
