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
    (store / "tmp" / "999999999-dead.tmp").write_bytes(b"partial")
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
    assert orch("cache", "verify", "--repair").returncode == 0
    assert orch("cache", "gc").returncode == 0
    assert _findings(orch) == (0, {})
    assert orch("run", "slow.py", "-p", "n=100000", "-p", "seconds=0").returncode == 0


def test_doctor_without_a_key_says_how_to_get_one(orch, store, tmp_path):
    assert orch("run", "slow.py", "-p", "n=100000", "-p", "seconds=0").returncode == 0
    os.remove(tmp_path / "config" / "orchestrator" / "signing.key")
    code, found = _findings(orch)
    assert code == 1 and set(found) == {"signing key"} and "ORCH_SIGNING_KEY" in found["signing key"]["fix"]
    assert not (tmp_path / "config" / "orchestrator" / "signing.key").exists()  # doctor only reads
