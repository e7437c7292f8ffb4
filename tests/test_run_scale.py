"""A run's bookkeeping grows with the pipeline, not with its square.

Timing is not asserted. The work is counted as the lines of orchestrator code a
run executes (``conftest.lines_executed``, the same on any machine): doubling the
pipeline must not do much more than double it. Each pipeline here once did: a
failure walked the whole DAG and sorted what it found by a scan of the node list
per node, and every map expansion wrote the node order out again, counted the
step calls again and tried every name the step's earlier maps had taken.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from orchestrator import pipeline, step
from orchestrator.node_order import NodeOrder
from tests.conftest import lines_executed as _lines

GROWTH = 2.3  # twice the pipeline: a linear cost doubles; the quadratic ones were 2.5 to 2.9 here


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def odd_only(i: int) -> int:
    if i % 2 == 0:
        raise ValueError(f"item {i} is even")
    return i


@step
def total(xs: list) -> int:
    return sum(xs)


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def half_fails(n: int = 4):
    """Every other item of a map fails, and a chain as long as the map waits behind its fan-in."""
    x = total(odd_only.map(numbers(n)))
    for _ in range(n):
        x = inc(x)
    return x


@step
def three(k: int) -> list:
    return [k, k + 1, k + 2]


@step
def double(i: int) -> int:
    return 2 * i


@pipeline
def many_maps(m: int = 2):
    """``m`` maps of one step, each over its own step's output: expanded one by one during the run."""
    return total([total(double.map(three(k))) for k in range(m)])


def _warm(tmp_path, p, **params) -> Callable[[int], str]:
    """A fresh store per size, where ``p`` already ran small (imports, fingerprints and the database paid for)."""
    def store(size: int) -> str:
        path = str(tmp_path / f"store-{size}")
        p.run(store=path, **params)
        return path
    return store


def test_failing_map_items_with_a_long_chain_behind_them_cost_in_proportion(tmp_path):
    store = _warm(tmp_path, half_fails, n=3)
    runs = {}

    def run(n: int) -> None:
        runs[n] = half_fails.run(store=store(n), n=n)

    work = {n: _lines(lambda n=n: run(n)) for n in (100, 200)}
    assert work[200] < GROWTH * work[100], work
    result = runs[200]
    assert result.status == "failed"
    assert [n for n, s in result.steps.items() if s.status == "failed"][:3] == ["odd_only", "odd_only_3",
                                                                              "odd_only_5"]
    assert sum(s.status == "failed" for s in result.steps.values()) == 100
    skipped = [n for n, s in result.steps.items() if s.status == "skipped"]
    assert skipped == ["total", "inc", *(f"inc_{i}" for i in range(2, 201))]  # in pipeline order
    assert {result.steps[n].reason for n in skipped} == {"upstream step 'odd_only' failed"}


def test_many_maps_expanding_during_a_run_cost_in_proportion(tmp_path, capsys):
    store = _warm(tmp_path, many_maps, m=2)
    runs = {}

    def run(m: int) -> None:
        runs[m] = many_maps.run(store=store(m), m=m, progress=True)  # the progress counts the steps too

    work = {m: _lines(lambda m=m: run(m)) for m in (60, 120)}
    assert work[120] < GROWTH * work[60], work
    result = runs[120]
    assert result.status == "succeeded" and result.output() == sum(2 * (3 * k + 3) for k in range(120))
    names = list(result.steps)
    # Each map's items before its fan-in, numbered on from the last map's.
    assert names[:10] == ["three", "double", "double_2", "double_3", "total", "three_2", "double_4", "double_5",
                          "double_6", "total_2"]
    assert names[-5:] == ["double_358", "double_359", "double_360", "total_120", "total_121"]
    assert f"{len(names)}/{len(names)}" in capsys.readouterr().err  # the count the progress ended on


def test_a_node_s_place_sorts_it_where_the_expansions_put_it_and_never_moves():
    """A place taken as an index when recorded moved with each later expansion: two steps of a
    run shared one, and `orch show` listed them in another order than Run.steps."""
    rng = random.Random(7)
    for _ in range(50):
        traced = [f"n{i}" for i in range(rng.randint(1, 30))]
        order = NodeOrder(traced)
        model = list(traced)
        given: dict[str, int] = {}  # each node's place when first asked, as its record keeps it
        maps = rng.sample(traced, rng.randint(0, len(traced)))
        for name in maps:
            items = [f"{name}_item{j}" for j in range(rng.randint(0, 4))]
            order.insert(name, items)
            at = model.index(name)
            model[at:at] = items
            given.update((n, order.place(n)) for n in rng.sample(model, rng.randint(0, len(model))) if n not in given)
            assert sorted(model, key=order.place) == model
            assert all(order.place(n) == place for n, place in given.items())
        assert len({order.place(n) for n in model}) == len(model)
        assert list(order.ordered({n: n for n in reversed(model)})) == model


def test_maps_of_one_step_number_their_items_on_and_skip_names_the_pipeline_uses():
    from orchestrator.dag import expand_map

    dag = many_maps.build(m=2)
    first, second = (n for n in dag.nodes.values() if n.is_map)
    dag.nodes["double_3"] = dag.nodes["three"]  # a name the pipeline took some other way
    made = expand_map(dag, first, [1, 2, 3])
    assert [n.name for n in made] == ["double", "double_2", "double_4"]
    assert [n.name for n in expand_map(dag, second, [4])] == ["double"]  # the first map's were not kept
    dag.nodes.update((n.name, n) for n in made)
    assert [n.name for n in expand_map(dag, second, [4, 5])] == ["double_5", "double_6"]


def test_the_progress_counts_the_steps_of_expanding_maps_at_the_same_cost_per_event(capsys):
    """Each expansion made the next event count the whole DAG again: 4.5 million calls for 1,000 maps."""
    from orchestrator.report import ConsoleReporter

    def work(m: int) -> int:
        dag = many_maps.build(m=m)
        plain = next(n for n in dag.nodes.values() if not n.is_map)
        reporter = ConsoleReporter(summary=False)
        reporter.run_started("run", dag)

        def events() -> None:
            for k in range(m):  # each map expands into 3 items, then they run
                items = [f"double_{k}_{j}" for j in range(3)]
                dag.nodes.update((name, plain) for name in items)
                for name in items:
                    reporter.step_started(name, "no earlier result")
                    reporter.step_finished(name, "ran", "no earlier result")
        return _lines(events)

    counted = {m: work(m) for m in (100, 200)}
    assert counted[200] < GROWTH * counted[100], counted
    # The count it shows is of step calls: 2 per map and its 3 items (not the map), and the last total.
    assert f"({3 * 200}/{200 * 5 + 1}, " in capsys.readouterr().err.splitlines()[-1]


def test_the_maps_of_one_step_name_their_items_at_the_same_cost_per_item():
    """The 2,000th map of a step tried, one by one, the 6,000 names its earlier maps had taken."""
    from orchestrator.dag import expand_map

    def work(m: int) -> int:
        dag = many_maps.build(m=m)
        maps = [n for n in dag.nodes.values() if n.is_map]

        def expand() -> None:
            for node in maps:
                dag.nodes.update((n.name, n) for n in expand_map(dag, node, [1, 2, 3]))
        return _lines(expand)

    counted = {m: work(m) for m in (100, 200)}
    assert counted[200] < GROWTH * counted[100], counted
