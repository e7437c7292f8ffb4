"""``orch models ls | show | promote | rollback`` and ``orch serve``: the registry from the command line.

Each command opens the store, asks ``orchestrator.registry`` (and
``orchestrator.audit`` for ``show``) and prints; ``--json`` prints exactly
one JSON document. A user's mistake (unknown model, bad version, no
production version) raises ``NotFoundError``/``UserError``, which ``orch``
prints as one line with exit 2. Heavy modules are imported inside the
commands so that ``orch --help`` stays fast; this module must not be
imported by the rest of the package except ``cli``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_common import close_with_command, echo, emit_json
from orchestrator.cli_usage import OrderedGroup
from orchestrator.errors import UserError
from orchestrator.timestamps import iso_time

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.registry import Registry


def _open(ctx: click.Context) -> tuple[Context, Registry]:
    from orchestrator.context import Context
    from orchestrator.registry import Registry

    obj = ctx.find_root().obj
    context = Context.open(obj["store"], obj["metadata"], create=False)  # reads a store; never makes one
    close_with_command(ctx, context)
    return context, Registry(context.lineage)


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _metrics_text(metrics: dict[str, Any] | None) -> str:
    from orchestrator.report import one_line

    return ", ".join(f"{k}={one_line(v)}" for k, v in (metrics or {}).items()) or "-"


@click.group("models", cls=OrderedGroup)
def models() -> None:
    """List, inspect, promote and roll back registered models."""


@models.command("ls")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of {name, versions, latest, production, metrics}.")
@click.pass_context
def models_ls(ctx: click.Context, as_json: bool) -> None:
    """List registered models with their production version and its metrics."""
    _, registry = _open(ctx)
    docs = []
    for m in registry.models():
        shown = m["production"] if m["production"] is not None else m["latest"]
        metrics = registry.version(m["name"], int(shown))["metrics"] if shown is not None else {}
        docs.append({"name": m["name"], "versions": int(m["versions"]), "latest": m["latest"],
                     "production": m["production"], "metrics": metrics or {}})
    if as_json:
        emit_json(docs)
        return
    if not docs:
        echo("no models yet. Run a pipeline whose step returns a ModelCandidate, e.g. "
                   "`orch run pipelines/lifecycle.py`.")
        return
    for d in docs:
        prod = f"v{d['production']}" if d["production"] is not None else "none"
        echo(f"{d['name']}  versions {d['versions']}  production {prod}  {_metrics_text(d['metrics'])}")


@models.command("show")
@click.argument("ref", metavar="NAME[@VERSION|@production|@latest]")
@click.option("--json", "as_json", is_flag=True, help="Print the model's versions, or one version's audit record, as JSON.")
@click.pass_context
def models_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a model's versions, or one version's audit trail (data, code, params, gate, who and when)."""
    from orchestrator.audit import audit_version
    from orchestrator.registry import parse_ref

    context, registry = _open(ctx)
    parse_ref(ref)  # a malformed reference (`churn@`, `churn@٣`) is one line before anything is read
    if "@" not in ref:
        versions = registry.versions(ref)
        production = registry.production(ref)
        if as_json:
            emit_json({"name": ref, "production": production, "versions": [
                {"version": v["version"], "stage": "production" if v["version"] == production else "registered",
                 "registered": iso_time(v["created"]), "run_id": v["run_id"], "metrics": v["metrics"],
                 "gate": v["gate"]} for v in versions]})
            return
        echo(f"model {ref}: {len(versions)} version(s), production "
                   f"{'v' + str(production) if production is not None else 'none'}")
        for v in versions:
            mark = "*" if v["version"] == production else " "
            gate = (v["gate"] or {}).get("reason", "")
            echo(f" {mark} v{v['version']}  {_when(v['created'])}  run {v['run_id']}  "
                       f"{_metrics_text(v['metrics'])}" + (f"\n      gate: {gate}" if gate else ""))
        echo(f"details: orch models show {ref}@VERSION")
        return
    doc = audit_version(context.lineage, registry.resolve(ref))
    if as_json:
        emit_json(doc)
        return
    run = doc["run"]
    echo(f"model {doc['model']} v{doc['version']} ({doc['stage']})  registered {doc['registered']}")
    echo(f"  metrics   {_metrics_text(doc['metrics'])}  (gate metric: {doc['metric']})")
    if doc["gate"]:
        echo(f"  gate      {'promoted' if doc['gate'].get('promoted') else 'refused'}: "
                   f"{doc['gate'].get('reason', '')}")
    if doc["promoted"]:
        p = doc["promoted"]
        echo(f"  promoted  {p['at']} by {p['user']}@{p['host']} ({p['action']})")
    echo(f"  run       {run.get('run_id')} of {run.get('pipeline')} by {run.get('user')}@{run.get('host')} "
               f"at {run.get('started')}, commit {(run.get('git_commit') or '-')[:12]}")
    if doc["params"]:
        from orchestrator.report import one_line

        echo("  params    " + ", ".join(f"{k}={one_line(v)}" for k, v in doc["params"].items()))
    for d in doc["training_data"]:
        echo(f"  data      {d['path']}  ({d['digest']}{', ' + d['now'] if d.get('now') else ''})")
    for s in doc["steps"]:
        reused = f" (cached in run {s['run_id']})" if s["computed_in"] != s["run_id"] else ""
        echo(f"  step      {s['step']}  code {str(s['code'] or '-')[:16]}  run {s['computed_in']}{reused}")
    echo(f"  artifact  {doc['artifact']}  (model digest {doc['model_digest'][:16]})")
    echo(f"lineage: orch lineage {doc['model']}@{doc['version']}")


@models.command("promote")
@click.argument("ref", metavar="NAME@VERSION")
@click.pass_context
def models_promote(ctx: click.Context, ref: str) -> None:
    """Make a version production by hand, without the gate (recorded with who did it)."""
    from orchestrator.registry import PRODUCTION, parse_ref

    _, registry = _open(ctx)
    name, which = parse_ref(ref, default="")
    if which in ("", PRODUCTION):
        raise UserError(f"say which version to promote: `orch models promote {name}@VERSION` "
                        f"(see `orch models show {name}`).")
    row = registry.resolve(ref)
    version = int(row["version"])
    previous = registry.promote(name, version)
    if previous == version:
        echo(f"{name}: v{version} is already production; nothing changed")
        return
    was = f"v{previous}" if previous is not None else "none"
    echo(f"{name}: production is now v{version} (was {was})")


@models.command("rollback")
@click.argument("name")
@click.pass_context
def models_rollback(ctx: click.Context, name: str) -> None:
    """Restore the production version that preceded the current one."""
    _, registry = _open(ctx)
    if "@" in name:
        model = name.partition("@")[0] or "NAME"
        raise UserError(f"rollback takes a model name, not a version: `orch models rollback {model}` "
                        f"(to make one version production, `orch models promote {model}@VERSION`).")
    current, previous = registry.rollback(name)
    echo(f"{name}: production rolled back from v{current} to v{previous}")


@click.command("serve")
@click.argument("ref", metavar="NAME[@production|@VERSION|@latest]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to bind (0: any free port).")
@click.pass_context
def serve(ctx: click.Context, ref: str, host: str, port: int) -> None:
    """Serve a registered model over HTTP: POST /predict, GET /health, GET /model."""
    from orchestrator.serve import serve as run_server

    context, _ = _open(ctx)

    def announce(loaded: Any, address: str) -> None:
        echo(f"serving {loaded.name} v{loaded.version} on http://{address} "
                   "(POST /predict, GET /health, GET /model); Ctrl-C stops", err=True)

    run_server(context, ref, host=host, port=port, announce=announce)
