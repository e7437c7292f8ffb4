"""Figure 8: building and planning a 10,000-node DAG.

The pipeline fans out and in: 99 groups, each a ``source`` feeding 99
``part`` nodes whose outputs one ``merge`` takes as a list, and one ``total``
over the 99 merges: 99 × 101 + 1 = 10,000 nodes. ``Pipeline.build`` traces the
body and computes every node's static key; ``Pipeline.plan`` on an empty
store builds again, opens the store and decides each node. The baseline is
the body called as plain Python, which calls every step function once. This
module measures; it asserts nothing about time.
"""

from __future__ import annotations

import statistics

from harness import Figure, Stores, at_most, median_time, progress, temp_dir, timed

from orchestrator import pipeline, step

NAME = "plan"
TITLE = "build and plan a 10,000-node fan-out/fan-in DAG (figure 8)"

GROUPS = WIDTH = 99  # 99 groups of (1 source + 99 parts + 1 merge), plus 1 total: 10,000 nodes
REPEAT = 3


@step
def source(group: int) -> int:
    return group


@step
def part(value: int, k: int) -> int:
    return value * k


@step
def merge(parts: list[int]) -> int:
    return sum(parts)


@step
def total(merged: list[int]) -> int:
    return sum(merged)


@pipeline
def fan(groups: int = GROUPS, width: int = WIDTH):
    merged = []
    for g in range(groups):
        src = source(g)
        merged.append(merge([part(src, k) for k in range(width)]))
    return total(merged)


def run(quick: bool) -> list[Figure]:
    nodes = GROUPS * (WIDTH + 2) + 1
    with temp_dir(NAME) as root:
        stores = Stores(root)
        fan.plan(store=stores.fresh("warm-up"), groups=2, width=2)  # imports and fingerprints

        progress(f"build a {nodes:,}-node DAG, {REPEAT}×")
        built = fan.build(groups=GROUPS, width=WIDTH)
        if len(built.nodes) != nodes:
            raise RuntimeError(f"expected {nodes} nodes, built {len(built.nodes)}")
        del built
        build = median_time(lambda: fan.build(groups=GROUPS, width=WIDTH), REPEAT)
        progress(f"plan it on an empty store, {REPEAT}×")
        plans = [timed(lambda: fan.plan(store=stores.fresh("empty"), groups=GROUPS, width=WIDTH))
                 for _ in range(REPEAT)]
        plan = statistics.median(plans)
        counts = fan.plan(store=stores.fresh("empty"), groups=GROUPS, width=WIDTH).counts()
    plain = median_time(lambda: fan(GROUPS, WIDTH), 5)
    shape = f"{nodes:,} nodes ({GROUPS} × (1 source + {WIDTH} parts + 1 merge) + 1 total); median of {REPEAT}"
    return [
        Figure("plan.build_s", f"8  Pipeline.build, {nodes:,} nodes", build, "s", plain,
               "plain call of the body", "≤ 1 s", at_most(build, 1), note=shape),
        Figure("plan.plan_s", f"8b Pipeline.plan, {nodes:,} nodes, empty store", plan, "s", plain,
               "plain call of the body", "≤ 1 s", at_most(plan, 1),
               note="includes its own build; " + ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))),
    ]
