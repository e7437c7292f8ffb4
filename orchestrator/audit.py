"""The audit trail of a registered model version: what made it, who ran it, and how it got promoted.

``audit_version`` gathers, for one version: the training data files (paths
and content digests), every upstream computation once (a step a run reused
cached and the step run that computed it are one) with its code fingerprint,
the digests of the project code it is made of and its parameters, the
metrics, the run's user, host, git commit and time, and the registry
events (registration, gate verdicts, promotions, rollbacks). It powers
``orch lineage NAME@production --format json`` and ``orch models show``.
Reads the metadata database only; it must not change anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFoundError
from orchestrator.timestamps import iso_time

if TYPE_CHECKING:
    from orchestrator.lineage_db import Lineage


def _unique(lineage: Lineage, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Files sorted by path, each (path, digest) once: a file can be both an input and a step's output.

    A file that no longer holds the content the model was trained on says so (``now``): the
    file at that path today is not the training data.
    """
    from orchestrator.provenance import file_now

    out = []
    for path, digest in sorted({(f["path"], f["digest"]) for f in files}):
        now = file_now(lineage, path, digest)
        out.append({"path": path, "digest": digest, **({"now": now[2:]} if now else {})})
    return out


def _as_the_run_holds_them(lineage: Lineage, run_id: str,
                           computations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps (by the ``RUN:STEP`` that computed each) in the model's run's pipeline order, each named in
    that run where it reused it cached.

    The walk meets them going up, branch by branch, and a computation reached
    through another run's records under that run's id: `orch show` of the
    model's run lists them in order, each cached one with the run that computed it.
    """
    records = {str(r["node"]): r for r in lineage.rows(
        "SELECT node, position, status, key, origin FROM steps WHERE run_id=?", (run_id,))}
    for computed_by, s in computations.items():
        record = records.get(s["step"])
        if record is not None and ":".join(lineage.origin(run_id, s["step"], record)) == computed_by:
            s["run_id"] = run_id
    last = len(records)
    return sorted(computations.values(), key=lambda s: records[s["step"]]["position"] if s["step"] in records else last)


def audit_version(lineage: Lineage, row: dict[str, Any]) -> dict[str, Any]:
    """The audit record of one version row (as ``Registry.version`` returns it)."""
    from orchestrator.provenance import walk
    from orchestrator.registry import Registry

    registry = Registry(lineage)
    name, version = row["name"], int(row["version"])
    run: dict[str, Any] = {}
    data: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    if row["run_id"]:
        try:
            r = lineage.run(row["run_id"])
            run = {"run_id": r["run_id"], "pipeline": r["pipeline"], "file": r["file"], "user": r["user"],
                   "host": r["host"], "git_commit": r["git_commit"], "started": iso_time(r["started"]),
                   "python": r["python"], "packages": r["packages"], "params": r["params"]}
        except NotFoundError:  # a run removed from the store leaves the rest of the trail usable
            run = {"run_id": row["run_id"], "missing": True}
        if row["node"]:
            graph = walk(lineage, f"{row['run_id']}:{row['node']}", "upstream")
            computations: dict[str, dict[str, Any]] = {}
            for v in graph.vertices.values():
                if v.kind == "file":
                    data.append({"path": v.data["path"], "digest": v.data["digest"]})
                elif v.kind == "artifact" and v.data.get("file"):  # a file a step wrote, then read
                    data.append({"path": v.data["file"]["path"], "digest": v.data["file"]["content"]})
                elif v.kind == "step" and v.data["computed_by"] not in computations:
                    # A step the run reused cached and the run that computed it are one computation.
                    computations[v.data["computed_by"]] = {
                        "step": v.data["step"], "run_id": v.data["run_id"], "code": v.data["code"],
                        "code_parts": v.data["code_parts"], "params": v.data["params"], "key": v.data["key"],
                        "computed_in": v.data["computed_by"].split(":", 1)[0]}
            steps = _as_the_run_holds_them(lineage, row["run_id"], computations)
    production = registry.production(name)
    events = [{"action": e["action"], "version": e["version"], "previous": e["previous"], "at": iso_time(e["at"]),
               "user": e["user"], "host": e["host"], "run_id": e["run_id"], "gate": e["detail"]}
              for e in registry.events(name) if e["version"] == version or e["previous"] == version]
    promoted = [e for e in events if e["version"] == version and e["action"] in
                ("promoted", "promoted by hand", "rolled back")]
    return {
        "model": name, "version": version, "stage": "production" if production == version else "registered",
        "production_version": production, "artifact": row["digest"], "model_digest": row["model_digest"],
        "registered": iso_time(row["created"]), "task": row["task"], "metric": row["metric"],
        "metrics": row["metrics"], "params": row["params"], "schema": row["schema"], "gate": row["gate"],
        "promoted": promoted[-1] if promoted else None,
        "run": run, "training_data": _unique(lineage, data), "steps": steps, "events": events,
        "lineage_ref": f"{row['run_id']}:{row['node']}" if row["run_id"] else None,
    }
