"""A damaged JSON value in metadata.db is one line and exit 2 for the commands that read it, a finding for doctor.

Each case writes one crafted value (not JSON, nested too deeply, an integer past
Python's digit limit, a value of the wrong kind) into one JSON column of a copy
of a small store, then runs the commands that read that column in-process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.lineage_schema import JSON_COLUMNS, decode_column
from orchestrator.loader import load_pipeline

from .conftest import copy_store

PIPELINES = Path(__file__).parent / "pipelines"

# Not JSON; 100,000 levels deep (RecursionError); 5,000 digits (ValueError); of the wrong kind.
NOT_JSON = '{"accuracy": 0.9'
DEEP = "[" * 100_000 + "]" * 100_000
LONG_INT = '{"n": ' + "7" * 5000 + "}"
CRAFTED = {"not json": NOT_JSON, "deep": DEEP, "long int": LONG_INT}
WRONG_FOR_OBJECT = {"a string": '"accuracy"', "a number": "5", "a list": "[1, 2]"}
WRONG_FOR_LIST = {"an object": '{"a": 1}', "a string": '"x"'}


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ORCH_SIGNING_KEY", "test-key")
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A store with one run, a model version made by its last step (by hand), its events and a drift check."""
    store = tmp_path_factory.mktemp("damaged") / "store"
    run = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=2, y=3)
    assert run.status == "succeeded"
    db = sqlite3.connect(store / "metadata.db")
    with db:
        digest = db.execute("SELECT digest FROM edges WHERE run_id=? AND node='second' AND direction='out'",
                            (run.id,)).fetchone()[0]
        db.execute("INSERT INTO models VALUES ('churn', 0, 1)")
        db.execute("INSERT INTO model_versions VALUES ('churn', 1, ?, ?, ?, 'second', 0, 'classification', "
                   "'accuracy', ?, ?, ?, ?)", (digest, digest, run.id, '{"accuracy": 0.9}', '{"C": 1}',
                                               '[{"name": "age", "kind": "number", "dtype": "int64"}]',
                                               '{"promoted": true, "reason": "first version"}'))
        db.execute("INSERT INTO model_events VALUES ('churn', 1, NULL, 'promoted', 1, 'me', 'host', ?, ?)",
                   (run.id, '{"promoted": true, "reason": "first version"}'))
        db.execute("INSERT INTO drift_checks VALUES ('churn', 1, 2, 'batch.csv', 'ok', 0, ?, 'r.json', 'r.html', "
                   "NULL)", ('{"drifted": [], "rows_current": 10}',))
    db.close()
    return {"store": store, "run": run.id, "digest": digest}


def _damage(base, tmp_path, table: str, column: str, value: str) -> Path:
    store = copy_store(base["store"], tmp_path / "store")
    db = sqlite3.connect(store / "metadata.db")
    with db:
        where = {"steps": "node = 'second'", "artifacts": "digest = ?", "cache": "node = 'second'"}.get(table, "1")
        args = (value, base["digest"]) if table == "artifacts" else (value,)
        changed = db.execute(f"UPDATE {table} SET {column}=? WHERE {where}", args).rowcount
    db.close()
    assert changed == 1
    return store


def _orch(capsys, store: Path, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["--store", str(store), *args])
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


# (table, column) -> the commands that read it; "RUN", "STEP" and "DIGEST" are filled in.
READERS = {
    ("runs", "metrics"): [["runs"], ["runs", "--json"], ["show", "latest"], ["show", "latest", "--json"],
                          ["models", "show", "churn@1"], ["lineage", "churn@1"]],
    ("runs", "params"): [["runs"], ["show", "latest"], ["lineage", "churn@1", "--format", "json"]],
    ("runs", "packages"): [["show", "latest", "--json"], ["models", "show", "churn@1"]],
    ("steps", "key_parts"): [["show", "latest"], ["lineage", "RUN:second"], ["lineage", "churn@1"]],
    ("model_versions", "metrics"): [["models", "ls"], ["models", "show", "churn"], ["models", "show", "churn@1"],
                                    ["lineage", "churn@1"]],
    ("model_versions", "params"): [["models", "show", "churn@1"]],
    ("model_versions", "gate"): [["models", "show", "churn"], ["models", "show", "churn@1", "--json"]],
    ("model_events", "detail"): [["models", "show", "churn@1"], ["lineage", "churn@1"]],
    ("drift_checks", "summary"): [["monitor", "churn", "--history"]],
    ("artifacts", "meta"): [["lineage", "DIGEST", "--downstream"]],
}


def _cases():
    for (table, column), commands in READERS.items():
        kind = JSON_COLUMNS[(table, column)][0]
        values = {**CRAFTED, **(WRONG_FOR_OBJECT if kind is dict else WRONG_FOR_LIST if kind is list else {})}
        for label, value in values.items():
            yield pytest.param(table, column, value, commands, id=f"{table}.{column}-{label}")
    yield pytest.param("model_versions", "schema", '{"a": 1}', [["models", "show", "churn@1"]],
                       id="model_versions.schema-an object")


@pytest.mark.parametrize(("table", "column", "value", "commands"), list(_cases()))
def test_a_damaged_value_is_one_line_and_exit_2(base, tmp_path, capsys, table, column, value, commands):
    store = _damage(base, tmp_path, table, column, value)
    for command in commands:
        args = [a.replace("RUN", base["run"]).replace("DIGEST", base["digest"]) for a in command]
        code, out, err = _orch(capsys, store, *args)
        assert code == 2, (args, out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
        assert err.startswith(f"error: the metadata database {store / 'metadata.db'} holds a damaged value in "
                              f"{table}.{column}"), (args, err)
        assert "`orch doctor`" in err and "backup" in err
    # doctor reports the value (and which row), and names the command that clears it.
    code, out, err = _orch(capsys, store, "doctor", "--json")
    assert code == 1 and "Traceback" not in err
    findings = json.loads(out)["findings"]
    if (table, column) == ("artifacts", "meta"):
        # The damaged row is the model version's artifact: it cannot be loaded, so the model is reported too.
        assert [f["check"] for f in findings] == ["object", "model"]
        assert "its record is damaged" in findings[0]["problem"] and findings[0]["fix"] == "orch cache verify --repair"
    else:
        assert [f["check"] for f in findings] == ["damaged value"]
        assert findings[0]["problem"].startswith(f"{table}.{column} where ")
        assert findings[0]["fix"].startswith(f"sqlite3 {store / 'metadata.db'}")


@pytest.mark.parametrize("table", ["runs", "steps", "model_versions", "model_events", "drift_checks"])
def test_doctors_fix_clears_the_value_and_keeps_the_rest(base, tmp_path, capsys, table):
    column = {"runs": "metrics", "steps": "key_parts", "model_versions": "gate", "model_events": "detail",
              "drift_checks": "summary"}[table]
    store = _damage(base, tmp_path, table, column, NOT_JSON)
    code, out, _ = _orch(capsys, store, "doctor", "--json")
    fix = json.loads(out)["findings"][0]["fix"]
    sql = fix.split('"')[1]
    db = sqlite3.connect(store / "metadata.db")
    with db:
        db.execute(sql)
    db.close()
    assert _orch(capsys, store, "doctor")[0] == 0
    assert _orch(capsys, store, "show", "latest")[0] == 0
    assert _orch(capsys, store, "models", "show", "churn@1")[0] == 0


def test_a_damaged_cache_entry_is_a_miss_that_the_next_run_replaces(base, tmp_path, capsys):
    store = copy_store(base["store"], tmp_path / "store")
    cached = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=2, y=3)
    assert {s.status for s in cached.steps.values()} == {"cached"}
    db = sqlite3.connect(store / "metadata.db")
    with db:
        db.execute("UPDATE cache SET outputs=? WHERE node='second'", ('{"not": "a list"}',))
    db.close()
    # gc keeps what a cached run reused by reading the cache index: an entry it cannot read stops it.
    code, _, err = _orch(capsys, store, "cache", "gc")
    assert code == 2 and "cache.outputs" in err and len(err.strip().splitlines()) == 1
    code, out, _ = _orch(capsys, store, "doctor", "--json")
    assert code == 1 and {f["check"] for f in json.loads(out)["findings"]} == {"damaged value"}
    run = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=2, y=3)
    assert run.status == "succeeded" and run.steps["second"].status == "ran"
    assert run.steps["first"].status == "cached"
    assert _orch(capsys, store, "doctor")[0] == 0


def test_an_artifact_row_whose_digest_is_no_digest_is_one_line_exit_2_until_verify_repairs_it(base, tmp_path, capsys):
    """A crafted `../x` stopped `cache ls` and `cache gc` with exit 1 and a line naming no table or row."""
    store = copy_store(base["store"], tmp_path / "store")
    db = sqlite3.connect(store / "metadata.db")
    with db:
        db.execute("INSERT INTO artifacts (digest, type, materializer, size, checksum, meta, created) "
                   "VALUES ('../x', 'int', 'json', 1, 'c', '{}', 0)")
    db.close()
    for command in (["cache", "ls"], ["cache", "gc"]):
        code, _, err = _orch(capsys, store, *command)
        assert code == 2 and "artifacts.digest of the row '../x'" in err, (command, err)
        assert len(err.strip().splitlines()) == 1 and "cache verify --repair" in err
    _orch(capsys, store, "cache", "verify", "--repair")
    assert _orch(capsys, store, "cache", "ls")[0] == 0


def test_cache_verify_repair_drops_an_artifact_whose_meta_is_damaged(base, tmp_path, capsys):
    store = _damage(base, tmp_path, "artifacts", "meta", DEEP)
    code, out, _ = _orch(capsys, store, "cache", "verify", "--json")
    assert code == 1 and len(json.loads(out)["damaged"]) >= 1
    assert _orch(capsys, store, "cache", "verify", "--repair")[0] == 0
    # The row is gone; the next run recomputes the artifact (the model version's, here) and records it again.
    run = load_pipeline(str(PIPELINES / "two_params.py")).run(store=str(store), x=2, y=3)
    assert run.steps["second"].status == "ran"
    assert _orch(capsys, store, "doctor")[0] == 0


@pytest.mark.parametrize("version", ["x3", "7" * 5000, "-1"])
def test_a_damaged_schema_version_is_a_damaged_database(base, tmp_path, capsys, version):
    store = copy_store(base["store"], tmp_path / "store")
    db = sqlite3.connect(store / "metadata.db")
    with db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (version,))
    db.close()
    code, _, err = _orch(capsys, store, "runs")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: the metadata database {store / 'metadata.db'} is damaged (its schema version ")
    code, out, _ = _orch(capsys, store, "doctor", "--json")
    assert code == 1 and json.loads(out)["findings"][0]["check"] == "database"


@pytest.mark.parametrize(("text", "expect", "detail"), [
    (NOT_JSON, dict, "not valid JSON"),
    (DEEP, list, "nested too deeply"),
    (LONG_INT, dict, "an integer too long to read"),
    (b"\xff\xfe\xff", dict, "not valid JSON text"),
    ('"x"', dict, "a string where an object belongs"),
    ("[1]", dict, "a list where an object belongs"),
    ("null", dict, "null where an object belongs"),
    ('{"a": 1}', list, "an object where a list belongs"),
])
def test_decode_column_names_the_problem(text, expect, detail):
    from orchestrator.errors import DamagedRecordError

    with pytest.raises(DamagedRecordError, match=detail) as info:
        decode_column(text, "runs.metrics of run abc", expect, "store/metadata.db")
    assert str(info.value).startswith("the metadata database store/metadata.db holds a damaged value in "
                                      "runs.metrics of run abc: ")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_decode_column_passes_good_values():
    assert decode_column(None, "x") is None and decode_column("", "x") is None
    assert decode_column('{"a": [1]}', "x") == {"a": [1]}
    assert decode_column('"digest"', "x", object) == "digest"
