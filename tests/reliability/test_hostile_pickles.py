"""Issue 5, item 11: pickled artifacts that would run code when loaded are refused before unpickling.

Every payload, once unpickled, would create a canary file. Each is put in
the store the way someone who can write the store (but has no signing key)
could: a hostile object with the signature removed, a wrong signature,
tampered metadata, a replaced object with its row's checksum updated, a
replaced object alone, an object planted with no row, a tampered inline
payload, one signed with another key, and one planted under the digest of a
value a run is about to produce (the run writes its own bytes rather than
adopt and sign it). Each load is refused with
``UntrustedArtifactError`` (or the checksum's ``CorruptArtifactError``)
and the canary never appears. Through ``orch``, the run never unpickles it
either, and ``orch cache verify --repair`` clears the way for a clean run.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from orchestrator import signing
from orchestrator.context import Context
from orchestrator.errors import CorruptArtifactError, UntrustedArtifactError
from orchestrator.hashing import hash_value
from orchestrator.store import ArtifactStore
from tests.reliability.helpers import no_traceback


class Hostile:
    """Unpickling this runs ``exec``: it writes the canary file."""

    def __init__(self, canary, pad=6000):
        self.canary, self.pad = str(canary), pad

    def __reduce__(self):
        code = f"open({self.canary!r}, 'w').write('unpickled')  #" + "x" * self.pad
        return (exec, (code,))


def _hostile_object(tmp_path, canary, digest, pad=6000):
    """An object file for ``digest`` holding a hostile pickle, well-formed down to its checksum."""
    scratch = ArtifactStore(tmp_path / f"scratch-{digest[:6]}-{pad}", fsync=False)
    info = scratch.put(Hostile(canary, pad), digest)
    return info, (None if info.inline is not None else scratch.path_of(digest))


def _plant(store, path, digest):
    target = store.path_of(digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    shutil.copyfile(path, target)


@pytest.fixture
def stored(orch, store):
    first = orch("run", "hostile.py", "--json")
    assert first.returncode == 0, first.stderr
    steps = {s["name"]: s["outputs"][0]["hash"] for s in json.loads(first.stdout)["steps"]}
    fresh = orch("run", "hostile.py", "-p", "n=2500", "--json")
    steps["other"] = {s["name"]: s["outputs"][0]["hash"] for s in json.loads(fresh.stdout)["steps"]}["make"]
    return steps


def test_hostile_pickles_are_never_unpickled(orch, calls, store, stored, tmp_path, figure):
    canary = tmp_path / "canary"
    big, small = stored["make"], stored["small"]
    db = sqlite3.connect(store / "metadata.db")
    payloads = executed = 0
    refused = []

    def attempt(name, digest, errors=(UntrustedArtifactError,)):
        nonlocal payloads, executed
        payloads += 1
        try:
            Context.open(store).load(digest)
            refused.append((name, False))
        except errors:
            refused.append((name, True))
        executed += canary.exists()
        canary.unlink(missing_ok=True)

    original = db.execute("SELECT a.checksum, a.size, s.hmac FROM artifacts a JOIN signatures s "
                          "USING (digest) WHERE digest=?", (big,)).fetchone()
    ctx = Context.open(store)
    # 0. planted under the digest a run is about to produce: the run stores its own bytes instead
    future = hash_value(set(range(3000)))
    f_info, f_path = _hostile_object(tmp_path, canary, future)
    _plant(ctx.store, f_path, future)
    planted_run = orch("run", "hostile.py", "-p", "n=3000")  # make(3000) runs and stores
    payloads += 1
    executed += canary.exists()
    refused.append(("planted under a digest a run produces",
                    planted_run.returncode == 0 and ctx.store.read_header(future).checksum != f_info.checksum
                    and Context.open(store).load(future) == set(range(3000))))
    info, path = _hostile_object(tmp_path, canary, big)
    with db:  # 1. the object replaced, its row's checksum updated to match, signature kept
        _plant(ctx.store, path, big)
        db.execute("UPDATE artifacts SET checksum=?, size=? WHERE digest=?", (info.checksum, info.size, big))
    attempt("replaced object + updated row", big)
    with db:  # 2. ... and the signature removed
        db.execute("DELETE FROM signatures WHERE digest=?", (big,))
    attempt("no signature", big)
    with db:  # 3. ... and a made-up signature
        db.execute("INSERT INTO signatures VALUES (?, ?)", (big, "0" * 64))
    attempt("bad signature", big)
    with db:  # 4. ... signed with another key
        db.execute("UPDATE signatures SET hmac=? WHERE digest=?", (signing.sign(info, b"another key"), big))
    attempt("signed with another key", big)
    with db:  # 5. the original row and signature, but its type and metadata tampered with
        db.execute("UPDATE artifacts SET checksum=?, size=?, type='builtins.frozenset', meta=? WHERE digest=?",
                   (original[0], original[1], json.dumps({"protocol": 4}), big))
        db.execute("UPDATE signatures SET hmac=? WHERE digest=?", (original[2], big))
    attempt("tampered metadata", big)
    # 6. an object planted under a digest no row records (only its header vouches for it)
    planted = hash_value("planted")
    p_info, p_path = _hostile_object(tmp_path, canary, planted)
    _plant(ctx.store, p_path, planted)
    attempt("planted object without a row", planted)
    # 7. a tampered inline payload with its checksum updated
    i_info, _ = _hostile_object(tmp_path, canary, small, pad=10)
    assert i_info.inline is not None
    with db:
        db.execute("UPDATE artifacts SET inline=?, checksum=?, size=? WHERE digest=?",
                   (i_info.inline, i_info.checksum, i_info.size, small))
    attempt("tampered inline payload", small)
    # 8. only the object replaced (row and signature intact): the checksum stops it before decoding
    print(orch("run", "hostile.py", "-p", "n=2500", "--json").stderr)
    other = stored["other"]
    o_info, o_path = _hostile_object(tmp_path, canary, other)
    _plant(ctx.store, o_path, other)
    attempt("replaced object only", other, errors=(CorruptArtifactError,))
    db.close()

    # Through the CLI: a run that needs the hostile artifacts never unpickles them.
    calls.clear()
    run = orch("run", "hostile.py", "-p", "k=1")
    payloads += 1
    executed += canary.exists()
    assert no_traceback(run), run.stderr
    if run.returncode != 0:  # refused with one clear line; the repair then lets the run recompute
        assert "is not trusted" in run.stderr and "orch cache verify --repair" in run.stderr, run.stderr
        verify = orch("cache", "verify", "--json")
        damaged = {d["hash"] for d in json.loads(verify.stdout)["damaged"]}
        assert {big, small, other} <= damaged  # the planted object is an orphan: `orch doctor`, gc
        assert orch("cache", "verify", "--repair").returncode == 0
        run = orch("run", "hostile.py", "-p", "k=1")
    assert run.returncode == 0, run.stderr
    assert {"make", "small", "use"} <= calls.ran()
    executed += canary.exists()
    figure(payloads=payloads, executed=executed)
    assert executed == 0 and all(ok for _, ok in refused), refused
