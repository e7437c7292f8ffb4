"""A step writes a file and returns its path; another reads it: the file is traceable by its path."""

from pathlib import Path

from orchestrator import pipeline, step


@step
def export(rows: int, target: str) -> Path:
    path = Path(target)
    path.write_text("".join(f"{i}\n" for i in range(rows)))
    return path


@step
def count(path: Path) -> int:
    return len(Path(path).read_text().splitlines())


@pipeline
def written(rows: int = 3, target: str = "export.txt"):
    return count(export(rows, target))
