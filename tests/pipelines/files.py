"""A pipeline whose input is a file: its content, not its name, goes into the key."""

from pathlib import Path

from recorder import record

from orchestrator import pipeline, step


@step
def read(path: Path) -> str:
    record("read")
    return Path(path).read_text()


@step
def shout(text: str) -> str:
    record("shout")
    return text.upper()


@step
def length(text: str) -> int:
    record("length")
    return len(text)


@step
def report(n: int, unit: str = "chars") -> str:
    record("report")
    return f"{n} {unit}"


@pipeline
def files(path: Path = Path("input.txt"), unit: str = "chars"):
    text = read(path)
    return shout(text), report(length(text), unit=unit)
