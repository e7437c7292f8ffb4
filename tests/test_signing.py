"""Signing keys and signatures: where the key comes from, and what a signature covers."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from orchestrator import signing
from orchestrator.store import ArtifactInfo

INFO = ArtifactInfo(digest="a" * 32, materializer="pickle", type_name="set", size=10, checksum="b" * 32,
                    meta={"protocol": 5})


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)
    return tmp_path / "config"


def test_key_file_is_created_once_with_mode_0600(config):
    assert not signing.has_key()
    key = signing.signing_key()
    path = config / "orchestrator" / "signing.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signing.signing_key() == key and signing.has_key()


def test_concurrent_first_use_agrees_on_one_key(config):
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(signing._create_key_file(
        config / "orchestrator" / "signing.key"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert not [p for p in (config / "orchestrator").iterdir() if p.name != "signing.key"]


def test_environment_key_hex_or_text(monkeypatch):
    monkeypatch.setenv("ORCH_SIGNING_KEY", "00" * 32)
    assert signing.signing_key() == bytes(32)
    monkeypatch.setenv("ORCH_SIGNING_KEY", "team secret")
    assert signing.signing_key() == b"team secret"
    assert signing.key_source() == "$ORCH_SIGNING_KEY"


def test_signature_covers_every_recorded_field():
    signature = signing.sign(INFO)
    assert signing.verify(INFO, signature) is None
    assert "no signature" in signing.verify(INFO, None)
    for change in ({"digest": "c" * 32}, {"materializer": "json"}, {"type_name": "dict"}, {"size": 11},
                   {"checksum": "d" * 32}, {"meta": {"protocol": 4}}):
        changed = ArtifactInfo(**{**INFO.to_dict(), "inline": None, **change})
        assert signing.verify(changed, signature) is not None, change
    assert signing.verify(INFO, signing.sign(INFO, b"other key")) is not None


def test_unreadable_key_is_one_clear_error(config):
    path = config / "orchestrator" / "signing.key"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    with pytest.raises(signing.SigningKeyError, match="is empty"):
        signing.signing_key()


def test_user_materializer_artifacts_verify_where_it_is_not_registered(tmp_path):
    """Signed when recorded, so a process that cannot tell whether it unpickles can still trust it."""
    from orchestrator import pipeline, serialize, step
    from orchestrator.context import Context
    from orchestrator.maintenance import verify_store
    from tests.test_serialize import Point, PointMaterializer

    serialize.register_materializer(PointMaterializer())
    try:
        make = step(name="make_point")(lambda n: Point(n, n + 1))
        run = pipeline(name="points")(lambda: make(2)).run(store=str(tmp_path / "s"))
        assert run.status == "succeeded"
    finally:
        serialize.unregister_materializer("test.point")
    ctx = Context.open(tmp_path / "s")
    assert verify_store(ctx)[1] == []
    digest = run.steps["make_point"].outputs["out"]
    assert ctx.artifact_info(digest).materializer == "test.point"


def test_verifying_without_a_key_creates_none_and_says_so(config):
    """Checking a copied store's signature must not make a key: it would fail them all, then sign runs."""
    signature = signing.sign(INFO, b"the key of the machine that stored it")
    reason = signing.verify(INFO, signature)
    assert reason is not None and reason.startswith(signing.NO_KEY_TO_CHECK)
    assert "$ORCH_SIGNING_KEY" in reason and str(config / "orchestrator" / "signing.key") in reason
    assert not signing.has_key() and not (config / "orchestrator").exists()
    key = signing.signing_key()  # the first signature (a run) still creates it
    assert (config / "orchestrator" / "signing.key").read_bytes() == key
    assert signing.verify(INFO, signing.sign(INFO)) is None


@pytest.mark.parametrize(("materializer", "signed"), [
    ("json", False), ("numpy", False), ("arrow.pandas", False), ("arrow.table", False),
    ("pickle", True),  # its read() runs pickle: a forged record must not reach it
    ("my.frames", True),  # a user's: a process that has not registered it cannot tell, so it is signed
])
def test_only_artifacts_whose_reading_may_unpickle_are_signed(materializer, signed):
    from orchestrator.serialize import needs_signature

    assert needs_signature(materializer) is signed
