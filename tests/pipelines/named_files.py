"""Steps that use the path they are given (its name, the partition folder it is in), not only its content.

Two files of equal bytes (a copy, two empty partitions) must each give their own result.
"""

from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


@step
def summarize(path: Path) -> dict:
    record("summarize")
    return {"file": path.name, "rows": len(path.read_text().splitlines()) - 1}


@step
def count_day(path: Path) -> dict:
    record("count_day")
    return {"day": path.parent.name.removeprefix("date="), "rows": len(path.read_text().splitlines()) - 1}


@step
def list_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("date=*/part-0.csv"))


@step
def gather(items: list) -> list:
    return items


@pipeline
def named(files: list[Path] = [Path("a.csv"), Path("b.csv")]):  # noqa: B006
    return gather(summarize.map(files))


@pipeline
def one(path: Path = Path("a.csv")):
    return summarize(path)


@pipeline
def days(folder: Path = Path("data")):
    return gather(count_day.map(list_files(folder)))


@step
def write(name: str) -> Path:
    path = Path(f"{name}.csv")
    path.write_text("x\n1\n")
    return path


@pipeline
def written(names: list = ["a", "b"]):  # noqa: B006
    return gather(summarize.map(write.map(names)))
