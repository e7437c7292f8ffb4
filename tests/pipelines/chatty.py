"""A pipeline that prints when imported and while it runs (see tests/test_cli.py)."""

from orchestrator import pipeline, step

print("loading chatty.py")


@step
def talk(x: int) -> int:
    print(f"talking about {x}")
    return x + 1


@pipeline
def chatty(x: int = 1):
    return talk(x)
