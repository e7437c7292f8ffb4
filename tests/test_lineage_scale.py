"""Inspecting a store with months of history: lineage walks stay linear in what they show.

Timing is not asserted. What is asserted is what makes a walk linear: every
query it issues is an index lookup (no table scan), a lookup by digest starts
from the digest, and a vertex with thousands of children is not checked
against them one by one.
"""

from __future__ import annotations

import sqlite3

import pytest

from orchestrator import pipeline, step
from orchestrator.context import Context
from orchestrator.provenance import walk


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def square(x: int) -> int:
    return x * x


@step
def add(xs: list) -> int:
    return sum(xs)


@pipeline
def mapped(n: int = 4):
    return add(square.map(numbers(n)))


@pytest.fixture
def two_runs(tmp_path):
    """A map run, and one of a longer list whose first items are cached (read from the first run)."""
    store = tmp_path / "store"
    first = mapped.run(store=str(store), n=4)
    second = mapped.run(store=str(store), n=5)
    assert first.status == second.status == "succeeded"
    assert second.steps["square"].status == "cached"
    return store, first, second


def _plans(conn: sqlite3.Connection, statements: list[str]) -> dict[str, list[str]]:
    return {s: [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + s)]
            for s in dict.fromkeys(statements) if s.lstrip().upper().startswith("SELECT")}


def test_every_query_of_a_lineage_walk_is_an_index_lookup(two_runs):
    """A scan per vertex is what made `orch lineage RUN --downstream` take 26 s on a 5,000-item map."""
    store, first, second = two_runs
    lineage = Context.open(store).lineage
    statements: list[str] = []
    lineage.conn.set_trace_callback(statements.append)  # the SQL with its values bound
    try:
        for ref, direction in [(f"{second.id}:numbers", "downstream"), (second.id, "downstream"),
                               (first.id, "downstream"), (f"{second.id}:add", "upstream"),
                               (second.steps["square"].outputs["out"], "downstream")]:
            walk(lineage, ref, direction)
    finally:
        lineage.conn.set_trace_callback(None)
    plans = _plans(lineage.conn, statements)
    assert plans
    scans = {s: p for s, p in plans.items() if any(line.startswith("SCAN") for line in p)}
    assert scans == {}
    # A lookup by digest starts from the digest, not from every step of a run (each map item's
    # readers were once looked for among all the run's steps).
    for sql, plan in plans.items():
        if "digest='" in sql.replace("digest = '", "digest='"):
            access = next(line for line in plan if line.startswith(("SEARCH", "SCAN")))
            assert "(digest=?" in access, (sql, plan)


def test_an_artifact_read_by_every_item_links_each_once(two_runs):
    store, first, second = two_runs
    graph = walk(Context.open(store).lineage, f"{first.id}:numbers", "downstream")
    listed = graph.vertices[f"artifact:{first.steps['numbers'].outputs['out']}@{first.id}:numbers"]
    assert listed.children == [("read by", f"step:{first.id}:{node}")
                               for node in ("square", "square_2", "square_3", "square_4")]
    assert graph.roots == [f"step:{first.id}:numbers"]
    whole_run = walk(Context.open(store).lineage, second.id, "downstream")
    assert len(whole_run.roots) == len(set(whole_run.roots)) == len(second.steps)


def test_a_store_of_schema_4_gets_the_lineage_indexes(two_runs):
    from orchestrator.lineage_schema import SCHEMA_VERSION

    store, first, _ = two_runs
    db = store / "metadata.db"
    with sqlite3.connect(db) as conn:  # as version 4 wrote it
        conn.executescript("DROP INDEX steps_key; DROP INDEX cache_step; DROP INDEX model_versions_digest;"
                           "UPDATE meta SET value='4' WHERE key='schema_version';")
    conn.close()
    lineage = Context.open(store).lineage
    indexes = {name for (name,) in lineage.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"steps_key", "cache_step", "model_versions_digest"} <= indexes
    assert lineage.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == \
        str(SCHEMA_VERSION)
    assert walk(lineage, f"{first.id}:add", "upstream").roots == [f"step:{first.id}:add"]
