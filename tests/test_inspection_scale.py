"""Inspecting a store with months of history: lineage, show and runs stay fast and readable at any size.

Timing is not asserted. What is asserted is what keeps them fast: for lineage, every
query it issues is an index lookup (no table scan), a lookup by digest starts
from the digest, and a vertex with thousands of children is not checked
against them one by one; a deep tree stops and names the command that goes
on; a table of thousands of rows is printed one line a row.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from orchestrator import pipeline, step
from orchestrator.context import Context
from orchestrator.provenance import walk
from tests.conftest import lines_executed


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
                           "DROP INDEX runs_pipeline; DROP INDEX runs_running;"
                           "UPDATE meta SET value='4' WHERE key='schema_version';")
    conn.close()
    lineage = Context.open(store).lineage
    indexes = {name for (name,) in lineage.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"steps_key", "cache_step", "model_versions_digest", "runs_pipeline", "runs_running"} <= indexes
    assert lineage.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == \
        str(SCHEMA_VERSION)
    assert walk(lineage, f"{first.id}:add", "upstream").roots == [f"step:{first.id}:add"]


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def chained(n: int = 400):
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


def _orch(capsys, *args: str) -> tuple[int, str, str]:
    from orchestrator.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def chain_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("chain") / "store"
    run = chained.run(store=str(store), n=400)
    assert run.status == "succeeded"
    return store, run.id


def test_the_lineage_of_a_long_chain_is_walked_whole(chain_store):
    """Past Python's recursion limit: the last step of a 2,000-step chain crashed with RecursionError."""
    store, run_id = chain_store
    lineage = Context.open(store).lineage
    up = walk(lineage, f"{run_id}:inc_400", "upstream")
    assert sum(v.kind == "step" for v in up.vertices.values()) == 400
    first = up.vertices[f"step:{run_id}:inc"]
    assert first.children == [] and first.data["params"] == {"x": 0}
    down = walk(lineage, f"{run_id}:inc", "downstream")
    assert sum(v.kind == "step" for v in down.vertices.values()) == 400


def test_a_deep_tree_stops_at_a_step_and_names_the_command_that_goes_on(chain_store, capsys, monkeypatch):
    from orchestrator.provenance import TREE_LEVELS

    monkeypatch.setenv("COLUMNS", "200")
    store, run_id = chain_store
    code, out, err = _orch(capsys, "--store", str(store), "lineage", f"{run_id}:inc_400")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == TREE_LEVELS + 1  # not 800 lines, each up to 3,200 characters wide
    step = 400 - TREE_LEVELS // 2
    assert re.search(rf"produced by: inc_{step} \(run {run_id}, ran\)  code [0-9a-f]{{12}}  "
                     rf"\(more beyond: orch lineage {run_id}:inc_{step}\)$", lines[-1]), lines[-1]
    # The command it names goes on from there; the JSON has everything.
    code, more, _ = _orch(capsys, "--store", str(store), "lineage", f"{run_id}:inc_{step}")
    assert code == 0 and more.splitlines()[0].startswith(f"inc_{step} (run {run_id}, ran)")
    code, doc, _ = _orch(capsys, "--store", str(store), "lineage", f"{run_id}:inc_400", "--format", "json")
    assert code == 0 and sum(node["kind"] == "step" for node in json.loads(doc)["nodes"]) == 400
    code, out, _ = _orch(capsys, "--store", str(store), "lineage", f"{run_id}:inc", "--downstream")
    assert code == 0 and out.splitlines()[-1].endswith(
        f"(more beyond: orch lineage {run_id}:inc_{TREE_LEVELS // 2 + 1} --downstream)")


def test_show_of_a_long_run_prints_one_line_per_step(chain_store, capsys, monkeypatch):
    """Past RICH_ROWS rows, rich's layout (3 s for 5,000 steps) gives way to one aligned line per row."""
    from orchestrator.tables import RICH_ROWS

    assert 400 > RICH_ROWS
    monkeypatch.setenv("COLUMNS", "60")  # narrower than a row: rows are not wrapped
    store, run_id = chain_store
    code, out, err = _orch(capsys, "--store", str(store), "show", run_id)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("step"))
    assert lines[head].split() == ["step", "status", "attempts", "time", "outputs", "why"]
    rows = lines[head + 1:]
    assert [row.split()[0] for row in rows] == ["inc"] + [f"inc_{i}" for i in range(2, 401)]
    assert all(row.split()[1:3] == ["ran", "1"] for row in rows)
    # Aligned: each column starts where its header does.
    status_at = lines[head].index("status")
    assert {row.index(" ran ") + 1 for row in rows} == {status_at}


def test_the_long_table_shows_what_rich_shows_and_keeps_its_styles(monkeypatch):
    import io

    from rich.console import Console
    from rich.text import Text

    from orchestrator import tables
    from orchestrator.report import status_text

    columns = [("step", {}), ("status", {}), ("why", {"overflow": "fold"})]
    rows: list[list[str | Text]] = [[Text(f"fit_{i}"), status_text("ran" if i % 2 else "cached"),
                                     "parameter `x` changed" * (i % 3)] for i in range(8)]

    def printed(rich_rows: int, **options) -> str:
        monkeypatch.setattr(tables, "RICH_ROWS", rich_rows)
        console = Console(file=io.StringIO(), width=200, **options)
        tables.print_table(console, columns, rows)
        return console.file.getvalue()

    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.splitlines()]

    assert lines(printed(100)) == lines(printed(2))
    colored = printed(2, force_terminal=True, color_system="standard")
    assert "\x1b[32mran" in colored and "\x1b[36mcached" in colored


def test_runs_says_how_many_it_left_out_and_how_to_list_them(two_runs, capsys, monkeypatch):
    """`orch runs` shows 20 by default: in a store of 3,000 runs, 20 rows read as all there is."""
    monkeypatch.setenv("COLUMNS", "200")
    store, first, second = two_runs
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "-n", "1")
    assert code == 0 and second.id in out and first.id not in out
    assert out.splitlines()[-1] == "the last 1 of 2 runs; orch runs -n 2 lists them all"
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "--pipeline", "mapped", "-n", "1")
    assert out.splitlines()[-1] == "the last 1 of 2 runs of mapped; orch runs --pipeline mapped -n 2 lists them all"
    for args in (["-n", "2"], []):
        code, out, _ = _orch(capsys, "--store", str(store), "runs", *args)
        assert code == 0 and out.splitlines()[-1].startswith(first.id)
    code, out, _ = _orch(capsys, "--store", str(store), "runs", "-n", "1", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [second.id]  # the JSON is the array alone


def test_the_runs_of_one_pipeline_and_the_running_ones_are_read_by_index(two_runs):
    """Every run and command looks for running runs whose process died: a scan of every run, each time."""
    store, _, _ = two_runs
    lineage = Context.open(store).lineage
    statements: list[str] = []
    lineage.conn.set_trace_callback(statements.append)
    lineage.runs(limit=20, pipeline="mapped")
    lineage.count_runs("mapped")
    lineage.mark_dead_runs()
    lineage.conn.set_trace_callback(None)
    plans = _plans(lineage.conn, statements)
    assert len(plans) == 3 and all("USING" in line and re.search(r"INDEX runs_(pipeline|running)\b", line)
                                   for plan in plans.values() for line in plan), plans


def test_a_vertex_with_many_children_lists_the_first_and_counts_the_rest(two_runs, monkeypatch):
    """The list a 5,000-item map read printed 15,000 lines; its readers are listed in pipeline order."""
    from orchestrator import provenance
    from orchestrator.provenance import render

    monkeypatch.setattr(provenance, "TREE_CHILDREN", 2)
    store, first, _ = two_runs
    lineage = Context.open(store).lineage
    down = render(walk(lineage, f"{first.id}:numbers", "downstream"), "tree").splitlines()
    readers = [line.split("read by: ")[1].split()[0] for line in down if "read by: square" in line]
    assert readers == ["square", "square_2"]
    assert down[-1] == "    └── … 2 more read by (--format json lists every one)"
    up = render(walk(lineage, f"{first.id}:add", "upstream"), "tree").splitlines()
    assert [line.split(":")[0].strip("├└─│ ") for line in up if "]: " in line] == ["xs[0]", "xs[1]"]
    assert up[-1] == "└── … 2 more xs[…] (--format json lists every one)"
    doc = json.loads(render(walk(lineage, f"{first.id}:numbers", "downstream"), "json"))
    assert sum(edge["label"] == "read by" and "square" in edge["to"] for edge in doc["edges"]) == 4


@step
def three(k: int) -> list:
    return [k, k + 1, k + 2]


@step
def double(i: int) -> int:
    return 2 * i


@pipeline
def many_maps(m: int = 2):
    """Map k reads [k, k+1, k+2]: two of its three items were computed by the map before it (cached)."""
    return add([add(double.map(three(k))) for k in range(m)])


def test_the_lineage_of_a_run_of_many_maps_reads_its_reused_items_once(tmp_path):
    """Each list of the run read every cached step of the run again: 52 s for 1,000 maps of 3 items."""
    def work(m: int):
        store = tmp_path / f"store-{m}"
        run = many_maps.run(store=str(store), m=m)
        assert run.status == "succeeded" and run.steps["double_5"].status == "cached"
        lineage = Context.open(store).lineage
        found = {}
        return lines_executed(lambda: found.update(g=walk(lineage, run.id, "downstream"))), found["g"], run

    (small, _, _), (large, graph, run) = work(60), work(120)
    assert large < 2.3 * small, (small, large)
    # Every step of the run, the cached items among them, is found downstream of it.
    assert {v.id for v in graph.vertices.values() if v.kind == "step"} == {f"step:{run.id}:{n}" for n in run.steps}
