"""A step given the path of the file it writes: an output path passed as a parameter."""

from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


@step
def report(n: int, out: Path) -> int:
    record("report")
    out.write_text(f"n={n}\n")
    return n


@step
def double(n: int) -> int:
    record("double")
    return 2 * n


@pipeline
def report_path(n: int = 1, out: Path = Path("report.txt")):
    return double(report(n, out))
