"""What a lineage REF names: a run, a step run, a digest prefix, a registered model, or a file path.

``orch lineage REF`` takes any of these. A path is traced by the contents runs
recorded reading or writing there, also once the file is gone or changed;
an ambiguous prefix or a path no run used is refused with one line naming
what would work. Reads the metadata database only; ``provenance`` walks from
the roots found here.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFoundError

if TYPE_CHECKING:
    from orchestrator.lineage_db import Lineage


def resolve_ref(lineage: Lineage, ref: str) -> list[tuple[str, str]]:
    """Roots for a REF: a file or folder on disk → its content, as read or written by steps;
    ``NAME@VERSION`` → the step run that made that model version; ``RUN:step`` → that step
    run; ``RUN:step.out1`` → that output of it (``output``, ``DIGEST@RUN:step``); a run id → its
    steps; else a digest prefix."""
    if not ref:
        raise NotFoundError("an empty REF is not valid. Pass a run id, RUN:step, NAME@VERSION, a file or a digest "
                            "(see `orch runs` and `orch cache ls`).")
    if names_a_file(ref):
        return _file_roots(lineage, ref)
    if "@" in ref:
        row = model_row(lineage, ref)
        if not row["run_id"] or not row["node"]:
            raise NotFoundError(f"model {ref} has no recorded step run to trace.")
        return [("step", f"{row['run_id']}:{row['node']}")]
    if ":" in ref:
        run_ref, node = ref.split(":", 1)
        run_id = lineage.resolve_run(run_ref)
        try:
            lineage.step_row(run_id, node)
        except NotFoundError:
            output = _output_root(lineage, run_id, node)
            if output is None:
                raise
            return [output]
        return [("step", f"{run_id}:{node}")]
    if looks_like_path(ref):
        gone = _gone_file_roots(lineage, ref)
        if gone:
            return gone
        raise NotFoundError(f"file '{ref}' does not exist (relative paths start at {os.getcwd()}). Pass an "
                            "existing file or folder, or a run id, RUN:step, NAME@VERSION or digest.")
    if _looks_like_id(ref):
        try:
            return _prefix_roots(lineage, ref)
        except NotFoundError:
            if os.path.exists(ref):  # a folder or file named in hex (`d1`, `ab`): no id begins so, a path it is
                return _file_roots(lineage, ref)
            raise
    try:
        return _run_roots(lineage, lineage.resolve_run(ref))  # `latest`
    except NotFoundError:
        if ref == "latest" or ref.startswith("latest~"):
            raise  # its own message: "no runs yet", or how many runs there are
    raise NotFoundError(f"'{ref}' is not a run id, RUN:step or digest in this store.{_model_hint(lineage, ref)} "
                        "See `orch runs` and `orch cache ls`.")


def _output_root(lineage: Lineage, run_id: str, name: str) -> tuple[str, str] | None:
    """``RUN:split.out1`` (one output, as `orch show` lists it and `load` takes it): ("output", DIGEST@RUN:STEP).

    None when ``name`` is no STEP.OUTPUT of the run, which then gets the message of an unknown step.
    """
    node, dot, output = name.rpartition(".")
    if not dot or not node or not output:
        return None
    try:
        lineage.step_row(run_id, node)
    except NotFoundError:
        return None
    outputs = {out: d for way, out, d, _, _ in lineage.flow_edges(run_id, node)[1] if way == "out"}
    if output not in outputs:
        from orchestrator.errors import did_you_mean

        made = f"its outputs are {', '.join(outputs)}.{did_you_mean(output, outputs)}" if outputs else \
            "it recorded no output."
        raise NotFoundError(f"step '{node}' of run {run_id} has no output '{output}': {made} Trace the step with "
                            f"`orch lineage {run_id}:{node}`.")
    return ("output", f"{outputs[output]}@{run_id}:{node}")


# The steps of a run that are its roots as a REF: those that read their inputs.
_ROOT_STATUSES = ("ran", "cached", "failed", "interrupted")


def _run_roots(lineage: Lineage, run_id: str) -> list[tuple[str, str]]:
    """Every step of the run that read its inputs: a failed or interrupted one too, often the one asked about.

    A skipped step read nothing, and a running one has no inputs recorded yet.
    """
    return [("step", f"{run_id}:{s['node']}") for s in lineage.steps(run_id) if s["status"] in _ROOT_STATUSES]


def runs_using_roots(lineage: Lineage, roots: list[tuple[str, str]]) -> set[str]:
    """The runs in which any of ``roots`` was used (see ``runs_using``).

    The roots of a run REF are its steps, thousands for a map: asked one by one,
    each step's re-runs were fetched once per step (150,000 rows for a 1,000-item
    map run again 150 times); all of one run's steps are asked in one statement.
    """
    # One output of a step run (RUN:split.out1) was used where that step run was.
    roots = [("step", ident.partition("@")[2]) if kind == "output" else (kind, ident) for kind, ident in roots]
    run_ids = {ident.split(":", 1)[0] for kind, ident in roots if kind == "step"}
    if len(roots) > 1 and len(run_ids) == 1 and all(kind == "step" for kind, _ in roots):
        (run_id,) = run_ids
        marks = ", ".join("?" * len(_ROOT_STATUSES))
        return {run_id} | {str(r) for (r,) in lineage.conn.execute(
            "SELECT DISTINCT o.run_id FROM steps s CROSS JOIN steps o WHERE s.run_id=? "
            f"AND s.status IN ({marks}) AND o.key=s.key AND o.node=s.node AND o.status IN ('ran', 'cached')",
            (run_id, *_ROOT_STATUSES))}
    return set().union(*(runs_using(lineage, kind, ident) for kind, ident in roots))


def _prefix_roots(lineage: Lineage, ref: str) -> list[tuple[str, str]]:
    """Roots for a hex REF: the run, artifact or input file whose id it begins; ambiguity is an error.

    A full run id wins; otherwise the prefix must name exactly one thing among
    run ids and digests, so that a short prefix never silently picks a kind.
    """
    prefix = ref.lower()  # ids and digests are lowercase hex: a prefix in capitals names them too
    runs = [str(r) for (r,) in lineage.conn.execute(
        "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 2",
        (prefix, prefix + "\uffff"))]
    if runs and runs[0] == prefix:
        return _run_roots(lineage, prefix)
    artifacts = [str(d) for (d,) in lineage.conn.execute(
        "SELECT digest FROM artifacts WHERE digest >= ? AND digest < ? LIMIT 2", (prefix, prefix + "g"))]
    files = [str(d) for (d,) in lineage.conn.execute(
        "SELECT DISTINCT digest FROM edges WHERE path IS NOT NULL AND digest >= ? AND digest < ? LIMIT 2",
        (prefix, prefix + "g")) if d not in artifacts]
    # An artifact `cache gc` removed is still in its runs' records (and in `orch show`): its lineage stands.
    artifacts += [str(d) for (d,) in lineage.conn.execute(
        "SELECT DISTINCT digest FROM edges WHERE path IS NULL AND digest >= ? AND digest < ? LIMIT 2",
        (prefix, prefix + "g")) if d not in artifacts and d not in files]
    written: dict[str, list[str]] = {}  # content of a file a step wrote -> the paths it returned
    if not runs and not artifacts and not files:
        written = _written_contents(lineage, prefix)
        files = list(written)
    found = len(runs) + len(artifacts) + len(files)
    if found == 0:
        raise NotFoundError(f"no run id or digest in this store begins with '{ref}'. See `orch runs` and "
                            "`orch cache ls`.")
    if found > 1:
        kinds = [_some(len(runs), "run id"), _some(len(artifacts) + len(files), "digest")]
        raise NotFoundError(f"'{ref}' is ambiguous: it begins {' and '.join(k for k in kinds if k)}. Give more "
                            "characters (see `orch runs` and `orch cache ls`).")
    if runs:
        return _run_roots(lineage, runs[0])
    if written:
        return [("artifact", digest) for digest in written[files[0]]]
    return [("artifact", artifacts[0])] if artifacts else [("file", files[0])]


def _written_contents(lineage: Lineage, prefix: str) -> dict[str, list[str]]:
    """Contents beginning with ``prefix`` of files steps wrote and returned as paths: content -> those paths' artifacts.

    No step read such a content as a file input (an edge would hold it), yet
    ``orch lineage FILE`` names it among a file's earlier contents, and
    ``orch models show`` as a model's data: it is traced from the paths that held it.
    ``prefix`` is lowercase hex (``_looks_like_id``): no LIKE wildcard in it.
    """
    found: dict[str, list[str]] = {}
    for digest, meta in lineage.conn.execute(
            "SELECT digest, meta FROM artifacts WHERE meta LIKE ? ORDER BY created", (f'%"content": "{prefix}%',)):
        named = (lineage.decode(meta, f"artifacts.meta of artifact {digest}") or {}).get("file")
        content = named.get("content") if isinstance(named, dict) else None
        if isinstance(content, str) and content.startswith(prefix):
            found.setdefault(content, []).append(str(digest))
    return found


def _some(n: int, noun: str) -> str:
    return "" if n == 0 else f"a {noun}" if n == 1 else f"several {noun}s"


def _model_hint(lineage: Lineage, ref: str) -> str:
    """`` Did you mean 'churn@production'?`` when REF names a registered model (any case)."""
    names = [str(n) for (n,) in lineage.conn.execute("SELECT name FROM models")]
    match = next((n for n in names if n.casefold() == ref.casefold()), None)
    return f" Did you mean '{match}@production'?" if match else ""


def _looks_like_id(ref: str) -> bool:
    """Whether REF could be a run id or a digest prefix: hex digits only."""
    return bool(ref) and all(c in "0123456789abcdef" for c in ref.lower())


def looks_like_path(ref: str) -> bool:
    """Whether REF is written as a path (a folder separator, or a file extension), not as an id."""
    return "/" in ref or os.sep in ref or re.search(r"\S\.[A-Za-z][A-Za-z0-9]{0,7}$", ref) is not None


def names_a_file(ref: str) -> bool:
    """Whether REF is a path on disk rather than an id (a bare hex name that exists stays an id)."""
    return not _looks_like_id(ref) and os.path.exists(ref)


def _file_roots(lineage: Lineage, ref: str) -> list[tuple[str, str]]:
    """The file's current content as steps read it (a file input) or wrote it (a path output).

    The path is looked up first, and the file hashed only if some run used it:
    ``orch lineage /`` must not read the whole disk to say that no run did.
    """
    from orchestrator.hashing import hash_file

    path = os.path.abspath(ref)
    pattern = f'%"path": {json.dumps(path)}%'
    used = lineage.conn.execute("SELECT 1 FROM edges WHERE path=? LIMIT 1", (path,)).fetchone() or \
        lineage.conn.execute("SELECT 1 FROM artifacts WHERE meta LIKE ? LIMIT 1", (pattern,)).fetchone()
    if not used:
        folder = lineage.conn.execute(  # read as part of a folder input: trace that folder
            "SELECT path FROM edges WHERE path IS NOT NULL AND substr(?1, 1, length(path) + 1) = path || '/' "
            "ORDER BY length(path) DESC LIMIT 1", (path,)).fetchone()
        if folder is not None and os.path.isdir(folder[0]):
            return _file_roots(lineage, folder[0])
        raise NotFoundError(f"no run in this store read or wrote '{ref}'"
                            f"{_files_inside(lineage, path) or _same_content_elsewhere(lineage, ref)}")
    memo = lineage.load_file_memo()  # a large file that runs already hashed is not read again
    content = hash_file(ref, memo)
    roots: list[tuple[str, str]] = []
    if lineage.conn.execute("SELECT 1 FROM edges WHERE digest=? AND path=? LIMIT 1", (content, path)).fetchone():
        roots.append(("file", f"{content}@{path}"))
    roots += [("artifact", str(d)) for (d,) in lineage.conn.execute(
        "SELECT digest FROM artifacts WHERE meta LIKE ? AND meta LIKE ? ORDER BY created",
        (f'%"content": "{content}"%', pattern))]
    if roots:
        return roots
    earlier = _earlier_contents(lineage, path, pattern)
    more = f" and {len(earlier) - _EARLIER_NAMED} more" if len(earlier) > _EARLIER_NAMED else ""
    raise NotFoundError(f"no run read or wrote '{ref}' as it is now (content {content[:12]}); earlier "
                        f"contents were, most recent first: {', '.join(d[:12] for d in earlier[:_EARLIER_NAMED])}"
                        f"{more}. Trace one with `orch lineage DIGEST --downstream`.")


# How many of a changed file's earlier contents its "as it is now" message names; it counts the others.
_EARLIER_NAMED = 5


def _earlier_contents(lineage: Lineage, path: str, pattern: str) -> list[str]:
    """Every content runs read at ``path`` or wrote there (returning it as a path), the most recent first.

    By the start of the latest run that read or wrote each: the user edited the
    file after the last runs, and the contents those trained on are the likely
    question, not whichever digests sort first. ``pattern`` finds the path in
    an artifact's ``meta``; a written content no run's edge names (its records
    pruned) counts from its artifact's creation.
    """
    when: dict[str, float] = {}
    for digest, started in lineage.conn.execute(
            "SELECT e.digest, MAX(r.started) FROM edges e JOIN runs r ON r.run_id=e.run_id WHERE e.path=? "
            "GROUP BY e.digest", (path,)):
        when[str(digest)] = float(started)
    for digest, meta, started in lineage.conn.execute(
            "SELECT a.digest, a.meta, COALESCE((SELECT MAX(r.started) FROM edges e JOIN runs r ON r.run_id=e.run_id "
            "WHERE e.digest=a.digest AND e.direction='out'), a.created, 0) FROM artifacts a WHERE a.meta LIKE ?",
            (pattern,)):
        named = (lineage.decode(meta, f"artifacts.meta of artifact {digest}") or {}).get("file")
        if isinstance(named, dict) and named.get("path") == path and isinstance(named.get("content"), str):
            when[named["content"]] = max(when.get(named["content"], 0.0), float(started))
    return sorted(when, key=lambda d: (-when[d], d))


def _gone_file_roots(lineage: Lineage, ref: str) -> list[tuple[str, str]]:
    """Every content runs read or wrote at a path no longer on disk, oldest first; none if no run used it.

    A dataset deleted, or moved, after training is still the question ("what was
    built from data/raw.csv?"): the runs recorded its path and contents, so the
    answer comes from those records, each content marked ``gone since``.
    """
    path = os.path.abspath(ref)
    roots = [("file", f"{d}@{path}") for (d,) in lineage.conn.execute(
        "SELECT e.digest FROM edges e JOIN runs r ON r.run_id=e.run_id WHERE e.path=? "
        "GROUP BY e.digest ORDER BY MIN(r.started)", (path,))]
    return roots + [("artifact", str(d)) for (d,) in lineage.conn.execute(
        "SELECT digest FROM artifacts WHERE meta LIKE ? ORDER BY created", (f'%"path": {json.dumps(path)}%',))]


def other_contents(lineage: Lineage, ref: str, roots: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The contents runs read at file REF's path other than those traced, oldest first, with their runs.

    ``orch lineage data/raw.csv`` traces the file as it is now; the versions
    of it that earlier runs trained on are named beside it, so that "what was
    built from this dataset" does not silently stop at its last edit.
    """
    path = os.path.abspath(ref)
    traced = {ident.partition("@")[0] for kind, ident in roots if kind == "file"}
    others = [str(d) for (d,) in lineage.conn.execute(
        "SELECT e.digest FROM edges e JOIN runs r ON r.run_id=e.run_id WHERE e.path=? "
        "GROUP BY e.digest ORDER BY MIN(r.started)", (path,)) if d not in traced]
    started = dict(lineage.conn.execute("SELECT run_id, started FROM runs"))
    # A run that reused a cached reader of the content used it too, though it recorded no edge of its own.
    return [{"digest": d, "runs": sorted(runs_using(lineage, "file", f"{d}@{path}"),
                                         key=lambda r: (started.get(r) or 0, r))} for d in others]


def _files_inside(lineage: Lineage, folder: str) -> str:
    """The end of the "no run used this path" message for a folder runs read files of, one by one."""
    if not os.path.isdir(folder):
        return ""
    inside = [str(p) for (p,) in lineage.conn.execute(
        "SELECT DISTINCT path FROM edges WHERE path IS NOT NULL AND substr(path, 1, length(?1) + 1) = ?1 || '/' "
        "ORDER BY path LIMIT 4", (folder.rstrip(os.sep),))]
    if not inside:
        return ""
    shown = ", ".join(os.path.relpath(p) for p in inside[:3]) + (" and more" if len(inside) > 3 else "")
    return (f" as a folder, but runs read files in it: {shown}. Trace one with `orch lineage "
            f"{os.path.relpath(inside[0])}`.")


def _same_content_elsewhere(lineage: Lineage, ref: str) -> str:
    """The end of the "no run used this path" message: where runs used a file of the same bytes.

    A project folder moved or copied elsewhere (or data renamed) keeps its
    files' contents but not their paths, which the store recorded absolute:
    the user's question is then answered by the content's digest. Only a
    regular file is hashed, never a folder (``orch lineage /`` must stay quick).
    """
    from orchestrator.hashing import hash_file

    fallback = ". Pass a run id, RUN:step, NAME@VERSION or a digest (see `orch runs`)."
    if not os.path.isfile(ref):
        return fallback
    try:
        content = hash_file(ref, lineage.load_file_memo())
    except OSError:
        return fallback
    paths = [str(p) for (p,) in lineage.conn.execute(
        "SELECT DISTINCT path FROM edges WHERE digest=? AND path IS NOT NULL ORDER BY path LIMIT 3", (content,))]
    if not paths:
        return fallback
    where = ", ".join(paths[:2]) + (" and elsewhere" if len(paths) > 2 else "")
    return (f" at {os.path.abspath(ref)}, but runs read the same content ({content[:12]}) at {where} (moved or "
            f"copied?). Trace it there with `orch lineage {content[:12]} --downstream`.")


def runs_using(lineage: Lineage, kind: str, ident: str) -> set[str]:
    """The runs in which a root was used: read or made by one of their steps, ran or cached."""
    if kind == "step":
        run_id, node = ident.split(":", 1)
        key = lineage.step_row(run_id, node)["key"]
        return {run_id} | {str(r) for (r,) in lineage.conn.execute(
            "SELECT run_id FROM steps WHERE node=? AND key=? AND status IN ('ran', 'cached')", (node, key))}
    digest, _, path = ident.partition("@")
    where, args = ("e.digest=? AND e.path=?", (digest, path)) if path else ("e.digest=?", (digest,))
    # A cached step of another run reused one of those computations (its key), and so used the root too.
    # Not, for a file, a step run that names the files it read: by the same key it read an equal copy
    # elsewhere (A.csv, for B.csv), and if it read this one, its edge says so (the first part).
    own_files = ("AND NOT EXISTS (SELECT 1 FROM edges o WHERE o.run_id=x.run_id AND o.node=x.node "
                 "AND o.direction='in' AND o.path IS NOT NULL)") if path else ""
    return {str(r) for (r,) in lineage.conn.execute(
        f"SELECT run_id FROM edges e WHERE {where} UNION SELECT x.run_id FROM steps x WHERE x.status IN "
        f"('ran', 'cached') AND x.key IN (SELECT s.key FROM edges e JOIN steps s ON s.run_id=e.run_id "
        f"AND s.node=e.node WHERE {where}) {own_files}",
        args + args)}


def model_row(lineage: Lineage, ref: str) -> dict[str, Any]:
    from orchestrator.registry import Registry

    return Registry(lineage).resolve(ref)
