"""What every benchmark shares: the ``Figure`` it reports, timers, temporary stores, the table.

A benchmark measures and returns figures; it never asserts anything about
time. A figure carries its baseline (measured in the same process and run)
and its target, and whether it meets the target is reported, not enforced.
This module must not import the orchestrator, numpy, pandas or pyarrow: the
start-up benchmark measures fresh processes, and run.py stays cheap to load.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Settings a user may have exported that would change what the run loop does; removed in run.py.
ORCH_ENV = ("ORCH_FSYNC", "ORCH_COMMIT_BUDGET", "ORCH_STORE")


@dataclass(frozen=True)
class Figure:
    """One measured number, its baseline from the same run, and its target.

    Attributes:
        key: stable identifier in the JSON output, e.g. ``"chain.cached_per_step"``.
        label: what was measured, for people.
        value: the measurement, in ``unit``.
        unit: ``"µs/step"``, ``"ms"``, ``"GB/s"``, ...
        baseline: the same work done without the orchestrator, in ``unit``; None if there is none.
        baseline_label: what the baseline is (``"plain calls"``, ``"raw xxh3"``).
        target: the goal as text (``"≤ 200 µs/step"``), empty for an informational figure.
        meets: whether ``value`` meets ``target``; None when there is no target.
        shown: replaces the rendered value when the figure is not a number (``"not imported"``).
        note: anything needed to read the figure (sizes, the ratio to the baseline).
    """

    key: str
    label: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    meets: bool | None = None
    shown: str = ""
    note: str = ""


def at_most(value: float, limit: float) -> bool:
    return value <= limit


def at_least(value: float, limit: float) -> bool:
    return value >= limit


# -- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes, after collecting garbage left by earlier work."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls of ``fn``."""
    return statistics.median(timed(fn) for _ in range(repeat))


def per_call(fn: Callable[[], object], calls: int, repeat: int = 5) -> float:
    """Median seconds per call when ``fn`` is called ``calls`` times in a row (for tiny costs)."""
    def batch() -> None:
        for _ in range(calls):
            fn()
    return median_time(batch, repeat) / calls


# -- stores ----------------------------------------------------------------------------------


@contextmanager
def temp_dir(name: str) -> Iterator[Path]:
    """A fresh folder under /tmp for one benchmark's stores, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"orch-bench-{name}-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Stores:
    """Hands out fresh store folders inside one benchmark's temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def fresh(self, label: str = "store") -> str:
        self._count += 1
        return str(self.root / f"{label}-{self._count}")


def progress(message: str) -> None:
    """A progress line on stderr, so that stdout holds only the results."""
    print(f"  … {message}", file=sys.stderr, flush=True)


# -- the table -------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """Three significant digits, without scientific notation for everyday magnitudes."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2g}"


def verdict(figure: Figure) -> str:
    if figure.meets is None:
        return ""
    return "meets" if figure.meets else "MISSES"


def table_rows(figures: list[Figure]) -> list[list[str]]:
    rows = [["figure", "measured", "baseline (same run)", "target", "verdict"]]
    for f in figures:
        measured = f.shown or f"{format_number(f.value)} {f.unit}".strip()
        baseline = ""
        if f.baseline is not None:
            baseline = f"{format_number(f.baseline)} {f.unit}".strip()
            if f.baseline_label:
                baseline += f" ({f.baseline_label})"
        rows.append([f.label, measured, baseline, f.target, verdict(f)])
    return rows


def format_table(figures: list[Figure]) -> str:
    """An aligned plain-text table, one figure per line, notes listed underneath."""
    rows = table_rows(figures)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                 row[3].ljust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {f.label.split()[0]:<3} {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def machine() -> dict[str, object]:
    """Where the figures come from, for the report and the JSON file."""
    import platform

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "code": code_version(),
    }


def code_version() -> str:
    """The commit measured, and whether the package had uncommitted changes (read-only git)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    changed = git("status", "--porcelain", "--", "orchestrator")
    return f"{commit} + uncommitted changes in orchestrator/" if changed else commit
