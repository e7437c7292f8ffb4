"""`orch doctor` finds each kind of problem and names the command that fixes it; the fixes work."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from orchestrator.store import ArtifactStore


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)


def _findings(orch):
    result = orch("doctor", "--json")
    return result.returncode, {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def test_doctor_reports_and_fixes(orch, store):
    assert orch("run", "slow.py", "-p", "n=100000", "-p", "seconds=0").returncode == 0
    assert _findings(orch) == (0, {})
    # Damage: a flipped byte, a dangling row, an orphan, a dead writer's temp file, a bad signature.
    rows = sqlite3.connect(store / "metadata.db").execute(
        "SELECT digest, inline IS NULL FROM artifacts").fetchall()
    big = next(d for d, is_file in rows if is_file)
    path = store / "objects" / big[:2] / big
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    ArtifactStore(store).put(b"orphan" * 2000, "e" * 32)  # an object no row records
    (store / "tmp" / f"999999999-{'d' * 16}.tmp").write_bytes(b"partial")
    db = sqlite3.connect(store / "metadata.db")
    with db:
        db.execute("INSERT INTO artifacts VALUES (?, 'bytes', 'pickle', 5, ?, NULL, NULL, 0)", ("d" * 32, "0" * 32))
    code, found = _findings(orch)
    assert code == 1
    assert set(found) == {"object", "dangling row", "orphans", "temp files"}
    assert found["object"]["fix"] == "orch cache verify --repair"
    assert "orch cache gc" in found["orphans"]["fix"] and "orch cache gc" in found["temp files"]["fix"]
    text = orch("doctor")
    assert text.returncode == 1 and "fix: orch cache verify --repair" in text.stdout
    assert text.stderr.rstrip().endswith("objects checked; store has 4 problems"), text.stderr
    assert orch("cache", "verify", "--repair").returncode == 0
    assert orch("cache", "gc").returncode == 0
    assert _findings(orch) == (0, {})
    # The store it checked and why it is that one, then the verdict: the object of the one run kept.
    assert orch("doctor").stderr == f"store {store} (from --store)\n1 object checked; store healthy\n"
    assert orch("run", "slow.py", "-p", "n=100000", "-p", "seconds=0").returncode == 0


def test_repair_drops_a_row_whose_digest_is_a_path_and_touches_nothing_outside(orch, store, tmp_path):
    """A crafted metadata.db row with digest ../victim: doctor names it, --repair removes the row only."""
    assert orch("run", "slow.py", "-p", "n=10", "-p", "seconds=0").returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("keep")
    evil = os.path.relpath(victim, store / "objects" / "00")
    db = sqlite3.connect(store / "metadata.db")
    with db:
        db.execute("INSERT INTO artifacts VALUES (?, 'bytes', 'pickle', 5, ?, NULL, NULL, 0)", (evil, "0" * 32))
    code, found = _findings(orch)
    assert code == 1 and found["dangling row"]["fix"] == "orch cache verify --repair"
    result = orch("cache", "verify", "--repair")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert victim.read_text() == "keep"
    assert _findings(orch) == (0, {})


def test_doctor_without_a_key_says_how_to_get_one(orch, store, tmp_path):
    assert orch("run", "slow.py", "-p", "n=100000", "-p", "seconds=0").returncode == 0
    os.remove(tmp_path / "config" / "orchestrator" / "signing.key")
    code, found = _findings(orch)
    assert code == 1 and set(found) == {"signing key"} and "ORCH_SIGNING_KEY" in found["signing key"]["fix"]
    assert not (tmp_path / "config" / "orchestrator" / "signing.key").exists()  # doctor only reads
    assert "the 1 pickled artifact(s) this store records cannot be verified" in found["signing key"]["problem"]


def test_doctor_calls_a_store_without_pickled_artifacts_healthy_without_a_key(orch, store, tmp_path):
    """Values stored as JSON, Arrow or .npy need no key, and a run that stores none creates none: a new user's
    first `orch doctor` said 'store has 1 problem' (exit 1) and to run `orch run` to create a key, which it did not."""
    assert orch("run", "diamond.py").returncode == 0
    assert not (tmp_path / "config" / "orchestrator" / "signing.key").exists()
    assert _findings(orch) == (0, {})
    assert orch("doctor").stderr.endswith("store healthy\n")


def _one_line_error(result):
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_a_damaged_database_is_one_line_everywhere_and_doctor_still_checks_objects(orch, store, calls, damage):
    args = ("run", "slow.py", "-p", "n=100000", "-p", "seconds=0")
    assert orch(*args).returncode == 0
    database = store / "metadata.db"
    if damage == "truncated":
        os.truncate(database, 8192)
    else:
        database.write_text("not a database\n")
    for command in (("runs",), ("show", "latest"), ("cache", "ls"), ("cache", "gc"), ("lineage", "latest"), args):
        result = orch(*command)
        assert result.returncode == 2, (command, result.stderr)
        line = _one_line_error(result)
        assert f"the metadata database {database} is damaged (" in line
        assert "orch doctor" in line and "move metadata.db aside" in line and "re-run your pipelines" in line
        assert "docs/store.md" in line
    (obj,) = ArtifactStore(store).iter_objects()
    path = ArtifactStore(store).path_of(obj)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    result = orch("doctor", "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    found = {f["check"]: f for f in doc["findings"]}
    assert doc["checked"] == 1 and set(found) == {"database", "object"}
    assert str(database) in found["database"]["problem"] and "damaged" in found["database"]["problem"]
    assert "move metadata.db aside" in found["database"]["fix"] and "re-adopt" in found["database"]["fix"]
    assert obj in found["object"]["problem"]
    # The fix works: a new database, and the run replaces the damaged object.
    database.rename(store / "metadata.db.damaged")
    calls.clear()
    assert orch(*args).returncode == 0
    assert calls.counts()["produce"] == 1
    assert _findings(orch) == (0, {})


def test_an_emptied_database_is_not_a_store_full_of_orphans(orch, store, calls):
    args = ("run", "slow.py", "-p", "n=100000", "-p", "seconds=0")
    assert orch(*args).returncode == 0
    objects = list(ArtifactStore(store).iter_objects())
    assert objects
    os.truncate(store / "metadata.db", 0)
    code, found = _findings(orch)
    assert code == 1 and set(found) == {"orphans"}
    assert f"{store / 'metadata.db'} records no runs, yet {len(objects)} object(s) exist" in found["orphans"]["problem"]
    assert "lost or reset" in found["orphans"]["problem"]
    fix = found["orphans"]["fix"]
    assert fix.startswith("re-run your pipelines") and "re-adopts" in fix and "would delete them all" in fix
    gc = orch("cache", "gc")
    assert gc.returncode == 2
    line = _one_line_error(gc)
    assert "records no runs" in line and f"holds {len(objects)} object" in line and "--force" in line
    assert list(ArtifactStore(store).iter_objects()) == objects
    assert "--force" in orch("cache", "gc", "--help").stdout
    # Re-running adopts the objects: the store is healthy again, and gc keeps them.
    assert orch(*args).returncode == 0
    assert _findings(orch) == (0, {})
    assert orch("cache", "gc").returncode == 0
    assert list(ArtifactStore(store).iter_objects()) == objects


def test_gc_force_deletes_the_objects_of_an_emptied_database(orch, store):
    assert orch("run", "slow.py", "-p", "n=100000", "-p", "seconds=0").returncode == 0
    os.truncate(store / "metadata.db", 0)
    result = orch("cache", "gc", "--force")
    assert result.returncode == 0, result.stderr
    assert "removed 1 artifact" in result.stdout
    assert list(ArtifactStore(store).iter_objects()) == []


def test_a_deleted_database_beside_objects_is_named_as_lost(orch, store):
    assert orch("run", "slow.py", "-p", "n=100000", "-p", "seconds=0").returncode == 0
    os.remove(store / "metadata.db")
    for command in (("doctor",), ("cache", "gc")):
        result = orch(*command)
        assert result.returncode == 2
        line = _one_line_error(result)
        assert f"holds objects but no metadata database {store / 'metadata.db'}" in line
        assert "re-run your pipelines" in line
    assert len(list(ArtifactStore(store).iter_objects())) == 1
