"""Checks shared by the reliability tests: the store is sound, a run's step statuses, processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.context import Context
from orchestrator.maintenance import verify_store


def store_problems(store: Path, *, temp_allowed: bool = False) -> list[str]:
    """Everything wrong with a store: damaged or torn objects, bad database, dangling rows, temp files."""
    if not store.exists():
        return []
    ctx = Context.open(store)
    try:
        problems = []
        integrity = ctx.lineage.integrity_check()
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        _, damaged = verify_store(ctx)
        problems += [f"{d.digest}: {d.problem}" for d in damaged]
        for key, outputs in ctx.lineage.conn.execute("SELECT key, outputs FROM cache"):
            for name, digest, inline, _ in json.loads(outputs):
                if not inline and not ctx.store.has(digest):
                    problems.append(f"cache entry {key} names missing object {digest} ({name})")
        leftovers = list((store / "tmp").glob("*.tmp")) if (store / "tmp").exists() else []
        if leftovers and not temp_allowed:
            problems.append(f"temp files left: {[p.name for p in leftovers]}")
        return problems
    finally:
        ctx.lineage.close()


def statuses(orch: Any, run: str = "latest") -> dict[str, str]:
    shown = orch("show", run, "--json")
    assert shown.returncode == 0, shown.stderr
    return {s["name"]: s["status"] for s in json.loads(shown.stdout)["steps"]}


def start(orch: Any, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(orch.store), *args],
                            cwd=orch.cwd, env=env or orch.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.005) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def start_mid_write(orch: Any, args: tuple[str, ...], temp: Path, pause: float) -> subprocess.Popen[bytes] | None:
    """Start ``orch ARGS`` and return it ``pause`` seconds into its first object write, or None if it
    finished before a temp file could be seen (no kill possible)."""
    proc = start(orch, *args)
    writing = wait_for(lambda: proc.poll() is not None or (temp.exists() and any(temp.glob("*.tmp"))),
                       timeout=60)
    assert writing
    if proc.poll() is not None:
        return None
    wait_for(lambda: False, timeout=pause)  # a random moment of the write
    return proc


def no_traceback(result: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in result.stderr and "Traceback" not in result.stdout
