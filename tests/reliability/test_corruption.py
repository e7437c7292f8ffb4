"""Issue 5, item 5: flipped bytes, truncation and zero-filled regions in Arrow, JSON and pickled objects.

Each damage is found by the checksum before anything is deserialized:
``orch cache verify`` lists exactly the damaged objects, a run that needs
them recomputes their producers, and ``orch cache verify --repair`` removes
them so that the next run recomputes them. (The store keeps tables as Arrow
IPC rather than Parquet; see docs/store.md.)
"""

from __future__ import annotations

import json
import os

import pytest

from orchestrator.context import Context
from tests.reliability.helpers import no_traceback, store_problems

PRODUCERS = ("table", "doc", "obj")


def _damage(path, mode):
    path.chmod(0o644)
    size = path.stat().st_size
    if mode == "flip":
        with open(path, "r+b") as f:
            f.seek(size - 100)
            byte = f.read(1)
            f.seek(size - 100)
            f.write(bytes([byte[0] ^ 0x01]))
    elif mode == "truncate":
        os.truncate(path, size // 2)
    else:  # zero-fill a region of the payload
        with open(path, "r+b") as f:
            f.seek(4096 + (size - 4096) // 3)
            f.write(b"\0" * min(4096, (size - 4096) // 3))


@pytest.mark.slow
def test_corruption_is_detected_listed_and_recomputed(orch, calls, store, figure):
    first = orch("run", "typed.py", "--json")
    assert first.returncode == 0, first.stderr
    steps = {s["name"]: s for s in json.loads(first.stdout)["steps"]}
    digests = {name: steps[name]["outputs"][0]["hash"] for name in PRODUCERS}
    ctx = Context.open(store)
    kinds = {ctx.lineage.artifact_row(d)["materializer"] for d in digests.values()}
    assert kinds == {"arrow.pandas", "json", "pickle"}
    faults = survived = lost = 0
    for k, mode in enumerate(["flip", "truncate", "zero"], start=1):
        for digest in digests.values():
            _damage(ctx.store.path_of(digest), mode)
        faults += len(digests)
        verify = orch("cache", "verify", "--json")
        listed = {d["hash"] for d in json.loads(verify.stdout)["damaged"]}
        assert verify.returncode == 1 and listed == set(digests.values()), (mode, verify.stdout)
        calls.clear()
        if mode == "zero":  # repair first: the run then recomputes from scratch
            repaired = orch("cache", "verify", "--repair")
            assert repaired.returncode == 0 and orch("cache", "verify").returncode == 0, repaired.stderr
        again = orch("run", "typed.py", "-p", f"k={k}", "--json")  # summary re-runs and reads all three
        ok = again.returncode == 0 and no_traceback(again) and calls.ran() == {*PRODUCERS, "summary"}
        result = json.loads(again.stdout)["outputs"] if ok else None
        ok = ok and Context.open(store).load(result) == 3 * 3000 + k and not store_problems(store)
        survived += len(digests) if ok else 0
        lost += 0 if ok else len(digests)
        assert ok, (mode, again.returncode, calls.ran(), again.stderr[-2000:], store_problems(store))
    figure(faults=faults, survived=survived, data_lost=lost)
    assert survived == faults and lost == 0
