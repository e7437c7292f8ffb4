"""`step.map` over a list or a step's output: one cached node per item, results in item order."""

from __future__ import annotations

import re

import pytest

from orchestrator.errors import UserError
from orchestrator.loader import load_pipeline

from .conftest import PIPELINES


def _fanout(target="fanout.py:fanout"):
    return load_pipeline(str(PIPELINES / target))


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_map_over_a_step_output_makes_one_node_per_item(store, calls, executor):
    run = _fanout().run(store=str(store), executor=executor, workers=None if executor == "sequential" else 2)
    assert run.status == "succeeded", run.error
    assert list(run.steps) == ["items", "square", "square_2", "square_3", "square_4", "total"]
    assert run.output() == 0 + 1 + 4 + 9


def test_changing_one_item_reruns_one_invocation(store, calls):
    _fanout().run(store=str(store))
    calls.clear()
    run = _fanout().run(store=str(store), bump=10)  # item 1 becomes 11; the others stay
    assert run.output() == 0 + 121 + 4 + 9
    assert calls.ran() == {"items", "square:11", "total"}
    assert run.steps["square"].status == "cached" and run.steps["square_2"].status == "ran"


def test_more_items_run_only_the_new_ones_and_lineage_has_each_item(store, calls):
    _fanout().run(store=str(store))
    calls.clear()
    run = _fanout().run(store=str(store), n=5)
    assert calls.ran() == {"items", "square:4", "total"}
    from orchestrator.lineage_db import Lineage

    steps = {s["node"]: s for s in Lineage(store / "metadata.db").steps(run.id)}
    assert "square.map" not in steps
    assert [i["name"] for i in steps["total"]["inputs"]] == [f"values[{i}]" for i in range(5)]


def test_static_map_over_a_list(store):
    from orchestrator import pipeline, step

    @step
    def double(x: int) -> int:
        return 2 * x

    @step
    def collect(xs: list) -> list:
        return xs

    @pipeline
    def static(values: list = [3, 1, 2]):  # noqa: B006
        return collect(double.map(values))

    run = static.run(store=str(store))
    assert list(run.steps) == ["double", "double_2", "double_3", "collect"]
    assert run.output() == [6, 2, 4]


def test_map_over_a_non_list_fails_that_step_clearly(store):
    run = _fanout("fanout.py:bad_map").run(store=str(store))
    assert run.status == "failed"
    assert "square.map() needs a list" in run.error and "returned a int" in run.error


def test_plan_shows_a_map_as_may_run(store, calls):
    plan = _fanout().plan(store=str(store))
    assert [(e.node, e.status) for e in plan.entries] == [
        ("items", "will run"), ("square.map", "may run"), ("total", "may run")]


def test_plan_after_a_run_expands_the_map_from_its_cached_list(store, calls):
    _fanout().run(store=str(store))
    plan = _fanout().plan(store=str(store))
    assert [(e.node, e.status) for e in plan.entries] == [
        ("items", "cached"), ("square", "cached"), ("square_2", "cached"), ("square_3", "cached"),
        ("square_4", "cached"), ("total", "cached")]

    # A parameter of the mapped step changes every item; one more item adds one node.
    changed = _fanout().plan(store=str(store), offset=1)
    assert [(e.node, e.status) for e in changed.entries][1:] == [
        ("square", "will run"), ("square_2", "will run"), ("square_3", "will run"), ("square_4", "will run"),
        ("total", "may run")]
    assert "parameter `offset` changed" in changed.entries[1].reason
    grown = _fanout().plan(store=str(store), n=5)
    assert [(e.node, e.status) for e in grown.entries] == [("items", "will run"), ("square.map", "may run"),
                                                            ("total", "may run")]
    # What the plan promised is what the run does.
    run = _fanout().run(store=str(store), offset=1)
    promised = {"will run": {"ran"}, "may run": {"ran", "cached"}, "cached": {"cached"}}
    assert list(run.steps) == [e.node for e in changed.entries]
    assert all(run.steps[e.node].status in promised[e.status] for e in changed.entries)


def test_a_map_under_an_alias_names_its_items_after_it(store):
    from orchestrator import pipeline, step

    @step
    def items(n: int) -> list:
        return list(range(n))

    @step
    def double(x: int) -> int:
        return 2 * x

    @step
    def collect(a: list, b: list) -> list:
        return a + b

    @pipeline
    def aliased(n: int = 2):
        return collect(double.alias("dyn").map(items(n)), double.alias("fixed").map([5, 6]))

    run = aliased.run(store=str(store))
    assert run.status == "succeeded", run.error
    assert set(run.steps) == {"items", "fixed", "fixed_2", "dyn", "dyn_2", "collect"}
    assert run.output() == [0, 2, 10, 12]
    assert double.alias("x").map([1, 2]) == [2, 4]  # outside a pipeline: plain calls


def test_rerun_forces_every_item_of_a_map_or_one_item_by_name(store, calls):
    _fanout().run(store=str(store))
    calls.clear()
    run = _fanout().run(store=str(store), rerun=["square.map"])
    assert {n: s.status for n, s in run.steps.items() if n.startswith("square")} == dict.fromkeys(
        ["square", "square_2", "square_3", "square_4"], "ran")
    assert run.steps["square_3"].reason == "forced with rerun="
    assert run.steps["total"].status == "cached"  # same outputs: early cutoff
    calls.clear()
    run = _fanout().run(store=str(store), rerun=["square_3"])  # an item that exists only at run time
    assert calls.ran() == {"square:2"}
    with pytest.raises(UserError, match="no step 'squares'"):
        _fanout().run(store=str(store), rerun=["squares"])


def test_rerun_of_an_item_no_map_makes_is_refused_or_said_never_silently_ignored(store, calls):
    from orchestrator.planner import plan_pipeline
    from orchestrator.report import RunObserver

    with pytest.raises(UserError, match="no step 'square_1'. The items of a map are named like repeated "
                                        "calls: 'square' for the first, then 'square_2'"):
        _fanout().run(store=str(store), rerun=["square_1"])
    with pytest.raises(UserError, match=r"Did you mean 'square.map'\?"):
        _fanout().run(store=str(store), rerun=["sqare.map"])
    _fanout().run(store=str(store))
    # Once the list is in the store, the plan knows the map's items, and refuses one it does not make.
    with pytest.raises(UserError, match=r"--rerun square_9: no item of map 'square.map' has that name "
                                        r"\(its 4 items are square … square_4\)"):
        plan_pipeline(_fanout(), {}, store=str(store), rerun=("square_9",))

    class Warnings(RunObserver):
        said: list[str] = []

        def warning(self, message):
            self.said.append(message)

    calls.clear()
    seen = Warnings()
    run = _fanout().run(store=str(store), rerun=["square_9"], progress=seen)  # known only once the run is under way
    assert run.status == "succeeded" and not calls.ran()
    assert seen.said == ["rerun='square_9': no item of map 'square.map' has that name "
                         "(its 4 items are square … square_4); nothing forced there"]


def test_plan_with_rerun_of_a_map_forces_its_items(store, calls):
    from orchestrator.planner import plan_pipeline

    _fanout().run(store=str(store))
    plan = plan_pipeline(_fanout(), {}, store=str(store), rerun=("square.map",))
    statuses = {e.node: (e.status, e.reason) for e in plan.entries}
    assert statuses["square_2"] == ("will run", "forced with --rerun")
    assert statuses["items"][0] == "cached"


def test_lineage_of_a_map_over_a_step_output_reaches_the_list_and_its_maker(store, calls):
    from orchestrator.context import Context
    from orchestrator.provenance import walk

    run = _fanout().run(store=str(store))
    lineage = Context.open(store).lineage
    up = walk(lineage, f"{run.id}:total", "upstream")
    steps = {v.data["step"] for v in up.vertices.values() if v.kind == "step"}
    assert steps == {"total", "square", "square_2", "square_3", "square_4", "items"}
    down = walk(lineage, f"{run.id}:items", "downstream")
    assert {v.data["step"] for v in down.vertices.values() if v.kind == "step"} == steps


def test_a_map_results_edges_are_in_item_order_past_ten(store, calls):
    from orchestrator.lineage_db import Lineage

    run = _fanout().run(store=str(store), n=12)
    steps = {s["node"]: s for s in Lineage(store / "metadata.db").steps(run.id)}
    assert [i["name"] for i in steps["total"]["inputs"]] == [f"values[{i}]" for i in range(12)]


def test_a_pipeline_may_return_a_map_itself(store, calls):
    for _ in range(2):  # ran, then cached
        run = _fanout("fanout.py:squares").run(store=str(store))
        assert run.output() == ([0, 1, 4], 61)


def test_downstream_of_a_rerun_step_reaches_the_cached_steps_that_read_its_output(store, calls):
    from orchestrator.context import Context
    from orchestrator.provenance import walk

    _fanout().run(store=str(store), n=1)
    run = _fanout().run(store=str(store), n=1, bump=5)  # items re-runs, same [0]: the rest is cached
    assert run.steps["items"].status == "ran" and run.steps["square"].status == "cached"
    down = walk(Context.open(store).lineage, f"{run.id}:items", "downstream")
    assert {v.data["step"] for v in down.vertices.values() if v.kind == "step"} == {"items", "square", "total"}


def test_a_map_over_a_map_keys_its_items_by_value_so_plan_and_rerun_agree(store, calls):
    pipe = _fanout("fanout.py:chained")
    first = pipe.run(store=str(store))
    assert first.status == "succeeded", first.error
    assert first.output() == 1 + 2 + 5
    parts = {s["node"]: s["key_parts"] for s in _lineage_steps(store, first.id)}
    assert parts["add_one_3"]["values"] == {"x": 4}  # the item's value, not a reference to it
    calls.clear()
    again = pipe.run(store=str(store))
    assert {s.status for s in again.steps.values()} == {"cached"} and calls.ran() == set()
    assert {e.status for e in pipe.plan(store=str(store)).entries} == {"cached"}
    grown = pipe.plan(store=str(store), n=4)
    assert grown.entries[-1].reason == "input from step 'add_one.map', which may run"


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_map_of_a_step_with_several_outputs_feeds_a_step_and_another_map(store, calls, executor):
    pipe = _fanout("fanout.py:pairs")
    run = pipe.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 2)
    assert run.status == "succeeded", run.error
    assert run.output() == (["m0", "m1", "m2"], 0 + 10 + 20)
    inputs = {s["node"]: s["inputs"] for s in _lineage_steps(store, run.id)}
    assert [i["name"] for i in inputs["count"]] == [f"pairs[{i}]" for i in range(6)]
    calls.clear()
    again = pipe.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 2)
    assert {s.status for s in again.steps.values()} == {"cached"} and calls.ran() == set()
    assert {e.status for e in pipe.plan(store=str(store)).entries} == {"cached"}


def _lineage_steps(store, run_id):
    from orchestrator.lineage_db import Lineage

    return Lineage(store / "metadata.db").steps(run_id)


def test_rerun_of_a_map_forces_its_items_only(store, calls):
    """`square.map` is the map over items(n), as `orch dag` lists it; the items of square.map([5, 6]),
    a map over a list the body holds, are forced by their names (both at once ran two maps)."""
    pipe = _fanout("fanout.py:squares")  # square.map(items(n)) and square.map([5, 6])
    pipe.run(store=str(store))
    calls.clear()
    run = pipe.run(store=str(store), rerun=["square.map"])
    assert run.status == "succeeded", run.error
    assert {n for n, s in run.steps.items() if s.status == "ran"} == {"square_3", "square_4", "square_5"}
    assert run.steps["items"].status == "cached"
    plan = pipe.plan(store=str(store), rerun=["square.map", "square", "square_2"])
    assert {e.node for e in plan.entries if e.reason == "forced with rerun="} == {
        "square", "square_2", "square_3", "square_4", "square_5"}


def test_a_map_named_as_orch_dag_names_it_lists_its_item_steps(store, calls):
    """`orch dag` shows `square.map`; `orch lineage RUN:square.map` names the items to trace instead."""
    from orchestrator.context import Context
    from orchestrator.errors import NotFoundError

    run = _fanout().run(store=str(store))
    lineage = Context.open(store).lineage
    with pytest.raises(NotFoundError) as raised:
        lineage.step_row(run.id, "square.map")
    assert str(raised.value) == (f"run {run.id} has no step 'square.map': each item of a map is a step of its own, "
                                 f"here square, square_2, square_3, … (4 in all). Name one, such as {run.id}:square_4.")


def test_failed_items_are_reported_in_pipeline_order_and_all_named(store):
    from orchestrator import pipeline, step
    from orchestrator.report import RunObserver

    @step
    def check(x: int) -> int:
        if x in (1, 4):
            raise ValueError(f"bad item {x}")
        return x

    @step
    def collect(xs: list) -> list:
        return xs

    @pipeline
    def checks(values: list = [0, 1, 2, 3, 4, 5]):  # noqa: B006
        return collect(check.map(values))

    class Summary(RunObserver):
        def run_finished(self, run_id, status, results):
            self.rows = list(results)

    seen = Summary()
    run = checks.run(store=str(store), progress=seen)
    # The skipped consumer came before the items still to run when it was recorded; the summary
    # lists the run as the pipeline reads, as `orch show` does.
    assert seen.rows == ["check", "check_2", "check_3", "check_4", "check_5", "check_6", "collect"]
    assert run.error.startswith("step 'check_2' failed after 1 attempt: ValueError: bad item 1 (details: ")
    assert run.error.endswith("; 1 more step failed: check_5)")
    from orchestrator.lineage_db import Lineage

    recorded = Lineage(store / "metadata.db").run(run.id)["error"]
    assert recorded.endswith("ValueError: bad item 1; 1 more step failed: check_5")


def test_a_map_takes_other_arguments_positionally_too(store):
    # train.map(items, 5.0) once made 5.0 the name of the map's items and crashed printing it.
    from orchestrator import pipeline, step

    @step
    def items() -> list:
        return [1, 2, 3]

    @step
    def scale(x: int, factor: float, shift: int = 0) -> float:
        return x * factor + shift

    @step
    def combine(*parts: float, w: float = 1.0) -> float:
        return sum(parts) * w

    @pipeline
    def scaled():
        return (scale.map(items(), 10.0), scale.alias("fixed").map([1, 2], 2.0, shift=1),
                combine.map(items(), 100, w=2.0))

    run = scaled.run(store=str(store))
    assert run.status == "succeeded", run.error
    assert run.output() == ([10.0, 20.0, 30.0], [3.0, 5.0], [202.0, 204.0, 206.0])
    assert {"fixed", "fixed_2"} <= set(run.steps)
    assert scale.map([1, 2], 3.0) == [3.0, 6.0]  # outside a pipeline: plain calls


@pytest.mark.parametrize(("items", "says"), [
    ({"a": 1, "b": 2}, "got a dict, whose items would be its keys: pass list(d.values())"),
    ({"b", "a"}, "got a set, whose order can change from run to run: pass sorted(...)"),
    ("abc", "got a str, whose items would be its characters"),
    (5, "needs a list of items, but got an int"),
    (None, "needs a list of items, but got None"),
])
def test_a_map_over_what_iterates_otherwise_than_meant_is_refused_where_written(store, items, says):
    from orchestrator import pipeline, step
    from orchestrator.errors import PipelineDefinitionError

    @step
    def double(x) -> object:
        return x * 2

    @pipeline
    def doubled():
        return double.map(items)

    with pytest.raises(PipelineDefinitionError, match=r"double.map\(\) \(test_map.py:\d+\) " + re.escape(says)):
        doubled.run(store=str(store))
    assert double.map(["x"]) == ["xx"]


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_equal_items_of_a_map_are_computed_once_in_a_run(store, calls, executor):
    # The first item's result was not committed yet when its twin looked it up (sequential), or
    # was still being computed (a pool): each twin computed it again.
    run = _fanout("fanout.py:repeated").run(store=str(store), executor=executor, workers=None if executor == "sequential" else 4)
    assert run.status == "succeeded", run.error
    assert calls.counts() == {"slow_square:3": 1, "slow_square:4": 1, "total": 1}
    assert [run.steps[n].status for n in ("slow_square", "slow_square_2", "slow_square_3", "slow_square_4")] \
        == ["ran", "cached", "ran", "cached"]
    assert run.output() == 9 + 9 + 16 + 9
    calls.clear()
    run = _fanout("fanout.py:repeated").run(store=str(store), executor=executor, workers=None if executor == "sequential" else 4, rerun="slow_square.map")
    assert calls.counts()["slow_square:3"] == 3  # forced: each runs, equal or not


def test_each_input_of_a_step_run_is_one_edge_named_as_its_argument(store):
    """The edges lineage keeps: one per plain input, ``arg[i]`` per item of a map's result, and an
    item of a map over a step's output reading that output under the map's parameter."""
    from orchestrator import pipeline, step

    @step
    def numbers(n: int) -> list:
        return list(range(n))

    @step
    def scale(x: int, factor: int) -> int:
        return x * factor

    @step
    def combine(values: list, first: int, pair: tuple, none: list) -> int:
        return sum(values) + first + pair[0] + len(pair[1]) + len(none)

    @step
    def nothing() -> list:
        return []

    @pipeline
    def edges(n: int = 3):
        listed = numbers(n)
        factor = scale(2, 1)
        scaled = scale.map(listed, factor)
        empty = scale.map(nothing(), factor)
        return combine(scaled, factor, (factor, listed), empty)

    run = edges.run(store=str(store))
    assert run.status == "succeeded", run.error
    steps = {s["node"]: s for s in _lineage_steps(store, run.id)}
    names = {node: sorted(i["name"] for i in s["inputs"]) for node, s in steps.items()}
    assert names["combine"] == ["first", "pair[0]", "pair[1]", "values[0]", "values[1]", "values[2]"]
    items = [node for node in names if node.startswith("scale_")]
    assert len(items) == 3 and all(names[item] == ["factor", "x"] for item in items)
    listed = [o["hash"] for o in steps["numbers"]["outputs"]]
    assert all([i["hash"] for i in steps[item]["inputs"] if i["name"] == "x"] == listed for item in items)


def _overlapping():
    return load_pipeline(str(PIPELINES / "overlapping_maps.py:overlapping_maps"))


def _positions(store, run_id):
    import sqlite3

    with sqlite3.connect(store / "metadata.db") as conn:
        return conn.execute("SELECT node, position FROM steps WHERE run_id=? ORDER BY position", (run_id,)).fetchall()


def test_a_run_of_several_maps_records_its_steps_in_the_order_run_steps_lists_them(store, capsys):
    """A step recorded before a later map expanded kept the place it had then: `window_2` shared a
    position with `double_3` and `orch show` listed it before `total`, unlike Run.steps."""
    import json

    import orchestrator
    from orchestrator.cli import main

    run = _overlapping().run(store=str(store), m=4)
    assert run.status == "succeeded" and run.steps["double_4"].status == "cached"
    assert list(run.steps)[:7] == ["window", "double", "double_2", "double_3", "total", "window_2", "double_4"]
    positions = [p for _, p in _positions(store, run.id)]
    assert len(set(positions)) == len(positions) == len(run.steps)
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main(["--store", str(store), "show", run.id, "--json"])
    assert ended.value.code == 0
    assert [s["name"] for s in json.loads(capsys.readouterr().out)["steps"]] == list(run.steps)
    assert list(orchestrator.get_run(run.id, store=str(store)).steps) == list(run.steps)


class _Killed(BaseException):
    """Stands for SIGKILL: the run stops where it is, and its end is never recorded."""


def test_a_run_killed_midway_lists_the_steps_it_recorded_in_pipeline_order(store, tmp_path, monkeypatch):
    import orchestrator
    from orchestrator.run_loop import RunLoop

    whole = list(_overlapping().run(store=str(tmp_path / "whole"), m=4).steps)
    expand = RunLoop._expand
    expanded = []

    def expand_then_die(self, node):
        if len(expanded) == 3:  # two maps expanded and their items recorded, the other windows too
            self.commits.stop()
            self.ctx.lineage.flush()  # what the commit watcher had written before the kill
            raise _Killed
        expanded.append(node.name)
        expand(self, node)

    monkeypatch.setattr(RunLoop, "_expand", expand_then_die)
    monkeypatch.setattr(RunLoop, "_finish", lambda self, status, database: None)
    with pytest.raises(_Killed):
        _overlapping().run(store=str(store), m=4)
    run_id = orchestrator.get_run("latest", store=str(store)).id
    rows = _positions(store, run_id)
    recorded = [node for node, _ in rows]
    assert {"double_4", "window_4"} <= set(recorded)
    assert len({p for _, p in rows}) == len(rows)
    assert recorded == [name for name in whole if name in recorded]


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_cached_map_over_a_maps_large_results_loads_none_of_them(store, executor, monkeypatch):
    """Each item of a map over a map's results was loaded from the store and hashed again on every run, a
    fully cached one too (every one of 400 arrays of 2 MB read): an item is an artifact whose digest is
    known. A large array now reaches its step as a reference, loaded only to run."""
    from orchestrator import pipeline, step
    from orchestrator.store import ArtifactStore

    @step
    def numbers(n: int) -> list:
        return list(range(n))

    import numpy as np

    @step
    def make(x: int) -> np.ndarray:
        return np.full(20_000, float(x))  # stored as a file, not inline

    @step
    def mean(xs: np.ndarray) -> float:
        return float(xs.mean())

    @step
    def total(means: list) -> float:
        return sum(means)

    @pipeline
    def big_items(n: int = 4):
        return total(mean.map(make.map(numbers(n))))  # items known when `numbers` has run

    workers = None if executor == "sequential" else 1
    first = big_items.run(store=str(store), executor=executor, workers=workers)
    assert first.status == "succeeded", first.error
    assert first.output() == 0 + 1 + 2 + 3
    loads: list[str] = []
    real_get = ArtifactStore.get
    monkeypatch.setattr(ArtifactStore, "get", lambda self, info, *a, **k: loads.append(info.digest)
                        or real_get(self, info, *a, **k))
    again = big_items.run(store=str(store), executor=executor, workers=workers)
    assert {s.status for s in again.steps.values()} == {"cached"}
    made = {first.steps[f"make{s}"].outputs["out"] for s in ("", "_2", "_3", "_4")}
    assert not made & set(loads)  # only the list of numbers is read, to know the first map's items
    assert {e.status for e in big_items.plan(store=str(store)).entries} == {"cached"}  # orch plan too
    assert not made & set(loads)
    monkeypatch.undo()
    # A changed item still runs, on its value: the keys of the others are those of the first run.
    changed = big_items.run(store=str(store), executor=executor, workers=workers, n=5)
    assert changed.output() == 10 and changed.steps["mean_5"].status == "ran"
    assert {changed.steps[f"mean{s}"].status for s in ("", "_2", "_3", "_4")} == {"cached"}


def test_a_map_over_a_maps_lists_of_written_files_re_runs_when_a_file_changes(store, tmp_path):
    """A list of paths counts each file by its content as it is now: such an item is read, not taken by the
    digest its producer recorded (which a large item briefly was: editing a file left its reader cached)."""
    from pathlib import Path

    from orchestrator import pipeline, step

    @step
    def names(n: int) -> list:
        return list(range(n))

    @step(untracked="tmp_path")  # written, not read
    def write(i: int) -> list[Path]:
        folder = tmp_path / f"out{i}"
        folder.mkdir(exist_ok=True)
        paths = [folder / f"part_{k:05d}.txt" for k in range(200)]  # a list stored as a file
        for path in paths:
            path.write_text(str(i))
        return paths

    @step
    def read(paths: list[Path]) -> str:
        return paths[0].read_text()

    @pipeline
    def written(n: int = 2):
        return read.map(write.map(names(n)))

    assert written.run(store=str(store)).output() == ["0", "1"]
    (tmp_path / "out0" / "part_00000.txt").write_text("EDITED")
    run = written.run(store=str(store))
    assert run.steps["read"].status == "ran" and run.output() == ["EDITED", "1"]


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_failing_item_of_a_map_over_a_steps_output_skips_only_its_readers_in_the_next_map(store, executor):
    """As with a map over a list the body holds: the other items of the next map run, the failed one's is skipped."""
    from orchestrator import pipeline, step
    from orchestrator.lineage_db import Lineage

    @step
    def numbers() -> list:
        return [1, 2, 3]

    @step
    def first(x: int) -> int:
        if x == 2:
            raise ValueError("bad item 2")
        return x * 10

    @step
    def second(y: int) -> int:
        return y + 1

    @step
    def third(z: int) -> int:
        return -z

    @step
    def total(zs: list) -> int:
        return sum(zs)

    @pipeline
    def chained_failure():
        return total(third.map(second.map(first.map(numbers()))))

    run = chained_failure.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 2)
    statuses = {name: (s.status, s.reason if s.status == "skipped" else "") for name, s in run.steps.items()}
    assert statuses == {
        "numbers": ("ran", ""), "first": ("ran", ""), "first_2": ("failed", ""), "first_3": ("ran", ""),
        "second": ("ran", ""), "second_2": ("skipped", "upstream step 'first_2' failed"), "second_3": ("ran", ""),
        "third": ("ran", ""), "third_2": ("skipped", "upstream step 'first_2' failed"), "third_3": ("ran", ""),
        "total": ("skipped", "upstream step 'first_2' failed"),
    }
    assert run.steps["third_3"].output() == -31
    recorded = {s["node"]: s["status"] for s in Lineage(store / "metadata.db").steps(run.id)}  # orch show
    assert recorded == {name: status for name, (status, _) in statuses.items()}
    # Once fixed, each item is keyed by its value, as before: the items that ran are cached.
    again = chained_failure.run(store=str(store))
    assert again.steps["second_3"].status == "cached" and again.steps["total"].status == "skipped"


def test_rerun_name_map_forces_the_map_dag_lists_under_that_name_not_also_a_body_lists_map(store):
    """`sq.map` is the map over a step's output `orch dag` lists; a map over a list the body holds of the
    same step, called before it, has its items forced by their names."""
    from orchestrator import pipeline, step

    @step
    def numbers(n: int) -> list:
        return list(range(10, 10 + n))

    @step
    def sq(x: int) -> int:
        return x * x

    @step
    def tot(xs: list) -> int:
        return sum(xs)

    @pipeline
    def edge(n: int = 3, m: int = 2):
        return tot(sq.map(list(range(m)))), tot(sq.map(numbers(n)))

    assert edge.run(store=str(store)).status == "succeeded"
    run = edge.run(store=str(store), rerun=("sq.map",))
    statuses = {name: s.status for name, s in run.steps.items() if name.startswith("sq")}
    assert statuses == {"sq": "cached", "sq_2": "cached", "sq_3": "ran", "sq_4": "ran", "sq_5": "ran"}
    by_name = edge.run(store=str(store), rerun=("sq", "sq_2"))
    assert {name for name, s in by_name.steps.items() if s.status == "ran"} == {"sq", "sq_2"}
    alone = pipeline(lambda m=2: tot(sq.map(list(range(m)))), name="alone")  # no other map: sq.map is this one
    assert {s.status for n, s in alone.run(store=str(store), rerun=("sq.map",)).steps.items() if n != "tot"} == {"ran"}
