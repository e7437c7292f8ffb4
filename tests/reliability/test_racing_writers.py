"""Issue 5, item 3: eight processes store the same key at once.

Each round, eight forked processes wait at a barrier and then ``put`` the
same digest: bytes, a DataFrame and a pickled set. Exactly one complete
object remains per digest, no temporary file is left, and every process's
reported ArtifactInfo reads back (its checksum matches the final object).

(A value whose pickle differs from process to process is not raced here: a
writer that finds another's pickled object replaces it unless the bytes are
identical, because a planted pickle must never be adopted and signed. Runs
never compute one key at once (key locks); if writers still raced, a reader
holding the older checksum is stopped by it and the value recomputed.)
"""

from __future__ import annotations

import multiprocessing

import pandas as pd

from orchestrator.hashing import hash_value
from orchestrator.store import ArtifactInfo, ArtifactStore

WRITERS = 8


def _values():
    return [
        ("bytes", b"r" * 8_000_000),
        ("frame", pd.DataFrame({"a": range(200_000), "b": [float(i) for i in range(200_000)]})),
        ("pickle", set(range(150_000))),
    ]


def _writer(root, name, digest, barrier, queue):
    value = dict(_values())[name]
    store = ArtifactStore(root, fsync=False)
    barrier.wait()
    try:
        queue.put(store.put(value, digest).to_dict())
    except Exception as exc:  # reported to the test, which fails on it
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def test_racing_writers(tmp_path, figure):
    ctx = multiprocessing.get_context("fork")
    root = tmp_path / "store"
    faults = survived = lost = 0
    for round_ in range(3):
        for name, value in _values():
            digest = hash_value((round_, name, "race"))
            barrier, queue = ctx.Barrier(WRITERS), ctx.Queue()
            procs = [ctx.Process(target=_writer, args=(str(root), name, digest, barrier, queue))
                     for _ in range(WRITERS)]
            for p in procs:
                p.start()
            reports = [queue.get(timeout=60) for _ in procs]
            for p in procs:
                p.join(timeout=60)
            faults += 1
            store = ArtifactStore(root)
            errors = [r["error"] for r in reports if "error" in r]
            objects = [d for d in store.iter_objects() if d == digest]
            readable = 0
            for report in reports:
                if "error" not in report:
                    store.get(ArtifactInfo.from_dict(report))  # raises if its checksum does not match
                    readable += 1
            ok = not errors and len(objects) == 1 and readable == WRITERS and store.verify(digest) is None
            lost += WRITERS - readable
            survived += ok
            assert ok, (name, errors, objects)
    assert not list((root / "tmp").glob("*.tmp"))
    figure(faults=faults, survived=survived, data_lost=lost)
    assert survived == faults and lost == 0
