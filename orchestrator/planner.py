"""Planning: what a run would do now, without running anything.

``plan_pipeline`` walks the DAG like the runner does and reports, for every
node, ``cached``, ``will run`` (with the reason) or ``may run`` (an input
comes from a node that will run, so its key is not known yet). The helpers
shared with the runner (tracing with the store's file memo, checking
``--rerun`` names, input hashes) live here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator import cache
from orchestrator.context import Context
from orchestrator.dag import DAG, Node, input_hash
from orchestrator.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from orchestrator.pipeline import Pipeline


@dataclass(frozen=True)
class PlanEntry:
    node: str
    status: str  # "cached" | "will run" | "may run"
    reason: str
    key: str | None


@dataclass
class Plan:
    pipeline: str
    entries: list[PlanEntry]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.status] = out.get(e.status, 0) + 1
        return out


def check_rerun(dag: DAG, rerun: Iterable[str]) -> set[str]:
    names = set(rerun)
    unknown = [n for n in names if n not in dag.nodes]
    if unknown:
        raise UserError(
            f"--rerun: pipeline '{dag.pipeline}' has no step '{unknown[0]}'."
            + did_you_mean(unknown[0], dag.nodes)
        )
    return names


def build(pipeline: Pipeline, params: dict[str, Any], ctx: Context) -> DAG:
    """Trace the pipeline, hashing file inputs through the store's memo."""
    memo = ctx.lineage.load_file_memo()
    before = dict(memo)
    dag = pipeline.build(file_memo=memo, **params)
    ctx.lineage.save_file_memo({k: v for k, v in memo.items() if before.get(k) != v})
    return dag


def plan_pipeline(pipeline: Pipeline, params: dict[str, Any], *, store: str | None = None,
                  metadata: str | None = None,
                  rerun: tuple[str, ...] = (), no_cache: bool = False) -> Plan:
    """For each node: cached, will run, or may run (an input comes from a node that runs), and why."""
    ctx = Context.open(store, metadata)
    dag = build(pipeline, params, ctx)
    forced = check_rerun(dag, rerun)
    history = cache.History(ctx.lineage, dag.pipeline)
    digests: dict[tuple[str, str], str] = {}
    state: dict[str, str] = {}
    entries = []
    for node in dag.nodes.values():
        if node.is_map:
            state[node.name] = "may run"
            entries.append(PlanEntry(node.name, "may run",
                                     f"one step per item of step '{node.map_over.node}', made when it is done",  # type: ignore[union-attr]
                                     None))
            continue
        running_up = [u for u in node.upstream if state[u] != "cached"]
        if running_up:
            state[node.name] = "may run"
            entries.append(PlanEntry(node.name, "may run",
                                     f"input from step '{running_up[0]}', which will run", None))
            continue
        key, parts = cache.node_key(node, input_hashes(node, digests))
        force = cache.FORCED if node.name in forced else cache.NO_CACHE_FLAG if no_cache else None
        decision = cache.decide(node, key, parts, ctx.lineage, ctx.store, history, force=force)
        if decision.hit:
            assert decision.outputs is not None
            for o in decision.outputs:
                digests[(node.name, o.name)] = o.digest
            state[node.name] = "cached"
            entries.append(PlanEntry(node.name, "cached", "cached", key))
        else:
            state[node.name] = "will run"
            entries.append(PlanEntry(node.name, "will run", decision.reason, key))
    return Plan(dag.pipeline, entries)


def input_hashes(node: Node, digests: dict[tuple[str, str], str]) -> dict[str, str]:
    return {arg: input_hash(t, lambda o: digests[(o.node, o.name)]) for arg, t in node.inputs.items()}
